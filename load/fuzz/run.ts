import { randomBytes } from 'node:crypto';
import { HubClient } from '../wire/hub-client.js';
import { AppFuzzer } from './app-fuzzer.js';
import { Harness } from './harness.js';
import { HttpFuzzer } from './http-fuzzer.js';
import { HubFuzzer } from './hub-fuzzer.js';
import { loadVectors } from './hub-frames.js';
import { Recorder, type FuzzReport } from './report.js';
import { Rng } from './rng.js';
import { Target, killOnExit } from './target.js';
import { withClusterBackends } from './cluster-backends.js';

export type { FuzzReport };

/**
 * One fuzz run: starts (or attaches to) a node, runs the hub-wire, app-socket and HTTP fuzzers
 * one after the other, watches the node all along (crash → record and restart; /healthz; actor
 * failures; RSS), checks at the end that a well-behaved hub still connects and a command
 * round-trips, and returns the report.
 */

export interface FuzzOptions {
  seed: string;
  hubFrames: number;
  appMessages: number;
  httpRequests: number;
  hubs: number;
  /** frames without a fixed answer per barrier */
  window: number;
  /** share of the hub frames sent by the growing hub */
  growShare: number;
  url?: string;
  adminUrl?: string;
  adminToken?: string;
  jwtSecret?: string;
  pid?: number;
  serverEnv: Record<string, string>;
  /** the spawned node in cluster mode, with a nats-server and a redis-server the run starts (not with `url`) */
  cluster?: boolean;
  outDir: string;
  maxSeconds: number;
  /** the run stops after this many crashes */
  maxCrashes: number;
  /** an input class that crashed the node this many times is not generated again (0: no limit) */
  crashRepeat: number;
  /** one line of progress every few seconds */
  progress?: (line: string) => void;
}

export const DEFAULTS = {
  hubFrames: 100_000,
  appMessages: 5_000,
  httpRequests: 5_000,
  hubs: 8,
  window: 4,
  growShare: 0.05,
  outDir: 'fuzz-out',
  maxSeconds: 1_800,
  maxCrashes: 20,
  crashRepeat: 2,
} as const;

/**
 * Log lines at error level or above (pino: 50 error, 60 fatal), counted by message. A failed actor
 * message becomes a violation of its own kind (message type and error), with the input its sender
 * sent last when the line arrived: exact for the app and HTTP phases, which wait for each answer;
 * in the hub phase the window before may be the one (the log and the socket are two channels).
 */
function onServerLine(h: Harness, line: string): void {
  if (!line.startsWith('{')) return;
  let entry: { level?: number; msg?: string; actor?: string; message?: string; err?: { message?: string; stack?: string } };
  try {
    entry = JSON.parse(line) as typeof entry;
  } catch {
    return;
  }
  if ((entry.level ?? 0) < 50) return;
  h.rec.counts.serverLogErrors.inc(entry.msg ?? '?');
  if (entry.msg !== 'actor message failed' || !entry.actor) return;
  const hubId = entry.actor.startsWith('hub:') ? entry.actor.slice(4) : null;
  const sender = hubId !== null ? h.owners.get(hubId) : entry.actor.startsWith('app:') ? 'app' : undefined;
  const inputs = sender ? h.inFlight.get(sender) : undefined;
  const frame = entry.err?.stack?.split('\n').find((l) => l.includes('/src/'));
  const at = frame ? (/(src\/[^:)]+:\d+)/.exec(frame)?.[1] ?? '') : '';
  const hubPhase = sender?.startsWith('hub/') === true;
  h.rec.violation({
    invariant: 'actor-failure',
    surface: hubPhase ? 'hub' : sender === 'app' ? 'app' : sender === 'http' ? 'http' : 'node',
    klass: `${entry.actor.split(':')[0]}:${entry.message ?? '?'}`,
    detail: `a ${entry.message ?? '?'} message threw in a ${entry.actor.split(':')[0]} actor${at ? ` at ${at}` : ''}: ${entry.err?.message ?? '?'}${hubPhase ? ' (hub frames go out in windows: the frame at fault may be in the window before this input; the protocol-oracle findings name it)' : ''}`,
    key: at || entry.err?.message,
    input: inputs?.[inputs.length - 1],
    tag: hubPhase ? entry.err?.message : inputs?.[inputs.length - 1]?.klass,
  });
}

export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  if (!opts.cluster) return fuzzOnce(opts, false);
  if (opts.url) throw new Error('cluster mode starts its own node: not with a url');
  return withClusterBackends((env) => fuzzOnce({ ...opts, serverEnv: { ...opts.serverEnv, ...env } }, true));
}

async function fuzzOnce(opts: FuzzOptions, cluster: boolean): Promise<FuzzReport> {
  const rec = new Recorder(opts.seed, opts.outDir);
  // set once the run has its ids; lines before that (start-up) are only counted by the node itself
  let harness: Harness | null = null;
  const target = await Target.start({
    url: opts.url,
    adminUrl: opts.adminUrl,
    adminToken: opts.adminToken,
    jwtSecret: opts.jwtSecret,
    pid: opts.pid,
    env: opts.serverEnv,
    onLine: (line) => harness && onServerLine(harness, line),
  });
  killOnExit(target);
  // ids from the seed against a fresh node (the same seed sends the same bytes); random against a
  // running node, where a second run with the same seed would find its ids taken
  const runId = target.spawned ? (new Rng(`ids/${opts.seed}`).u32() & 0xffffff).toString(16).padStart(6, '0') : randomBytes(3).toString('hex');
  const h = new Harness(target, rec, runId, Date.now() + opts.maxSeconds * 1000);
  harness = h;
  const rng = new Rng(opts.seed);
  const vectors = loadVectors();
  let restarts = 0;
  let finishing = false;
  let actorFailures = 0;
  let actorBase = (await target.actorFailures()) ?? 0;

  /** Adds the actor failures of the current process since the last reading. */
  const readActorFailures = async () => {
    const n = await target.actorFailures();
    if (n === null) return;
    actorFailures += Math.max(0, n - actorBase);
    actorBase = n;
  };

  // crash watcher: a spawned node that exits is recorded, then restarted
  const watcher = (async () => {
    if (!target.spawned) return;
    for (let i = 0; i < opts.maxCrashes + 1; i++) {
      const info = await target.whenExited();
      if (finishing) return;
      const inFlight = [...h.inFlight.values()].flat();
      const crash = rec.crash({ at: rec.now(), phase: h.phase, exitCode: info.code, signal: info.signal, stderrTail: target.lastLines().slice(-40), inFlight });
      opts.progress?.(`node crashed in the ${h.phase} phase (exit ${info.code ?? info.signal}); inputs saved to ${crash.file}`);
      if (rec.crashes.length >= opts.maxCrashes) {
        h.stop(`${rec.crashes.length} crashes (--max-crashes)`);
        return;
      }
      h.restarting = target.restart().then(
        () => {
          restarts++;
          actorBase = 0;
        },
        (err: unknown) => h.stop(`the node could not be restarted: ${(err as Error).message}`),
      );
      await h.restarting;
      h.restarting = null;
      if (h.stopped) return;
    }
  })();

  // liveness: /healthz on the admin port every second while the node is up
  const health = { checks: 0, failures: 0 };
  let lastHealthViolation = 0;
  const healthLoop = (async () => {
    while (!finishing && !h.stopped) {
      await new Promise((r) => setTimeout(r, 1_000));
      if (finishing || !target.alive || h.restarting) continue;
      const ok = await target.healthz(3_000);
      if (ok === null) return;
      health.checks++;
      if (ok) continue;
      // a node that is dying does not answer either: that is the crash watcher's business
      await new Promise((r) => setTimeout(r, 500));
      if (!target.alive || h.restarting || finishing) continue;
      health.failures++;
      if (!target.spawned) {
        h.stop('the node stopped answering /healthz');
        continue;
      }
      if (Date.now() - lastHealthViolation > 10_000) {
        lastHealthViolation = Date.now();
        rec.violation({ invariant: 'healthz', surface: 'node', klass: h.phase, detail: `GET /healthz unanswered within 3 s while the process was alive (in the ${h.phase} phase)`, input: [...h.inFlight.values()].flat()[0] });
      }
    }
  })();

  // progress line
  const progress = opts.progress
    ? setInterval(() => {
        const s = rec.sent;
        opts.progress!(
          `[${Math.round(rec.now() / 1000)}s ${h.phase}] hub frames ${s.hubFrames}, app messages ${s.appMessages}, http requests ${s.httpRequests}, crashes ${rec.crashes.length}, violations ${rec.violationCount}`,
        );
      }, 5_000)
    : null;

  const rssBefore = target.rss();
  const cpuBefore = target.cpuMs();
  const fuzzerCpu = process.cpuUsage();
  let cpuGeneration = target.generation;
  const phaseMs: Record<string, number> = {};
  const phases: FuzzReport['phases'] = {};
  const phase = async (name: string, run: () => Promise<void>) => {
    if (h.over()) return;
    h.phase = name;
    h.inFlight.clear();
    const t0 = Date.now();
    const generation = target.generation;
    const cpu0 = target.cpuMs();
    try {
      await run();
    } finally {
      phaseMs[name] = Date.now() - t0;
      if (h.restarting) await h.restarting;
      await readActorFailures();
      // one process all along: its CPU and memory tell what this phase cost
      const sameProcess = target.generation === generation;
      const cpu1 = target.cpuMs();
      phases[name] = {
        ms: phaseMs[name]!,
        nodeCpuMs: sameProcess && cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null,
        rssAfterBytes: target.rss(),
        restarts: target.generation - generation,
      };
    }
  };

  let fatal: unknown = null;
  try {
    if (opts.hubFrames > 0) await phase('hub', () => new HubFuzzer(h, rng.fork('hub'), vectors, { frames: opts.hubFrames, hubs: opts.hubs, window: opts.window, growShare: opts.growShare }).run());
    if (opts.appMessages > 0) await phase('app', () => new AppFuzzer(h, rng.fork('app'), { messages: opts.appMessages, crashRepeat: opts.crashRepeat }).run());
    if (opts.httpRequests > 0) await phase('http', () => new HttpFuzzer(h, rng.fork('http'), { requests: opts.httpRequests, crashRepeat: opts.crashRepeat }).run());
  } catch (err) {
    fatal = err;
  }

  h.phase = 'final';
  if (h.restarting) await h.restarting;
  const finalCheck = target.alive ? await wellBehavedHub(h) : { ok: false, detail: 'the node is not running' };
  if (!finalCheck.ok) rec.violation({ invariant: 'final-check', surface: 'node', klass: 'well-behaved-hub', detail: finalCheck.detail });
  await readActorFailures();
  if (actorFailures > 0) {
    rec.violation({ invariant: 'actor-failures', surface: 'node', klass: 'tier_actor_failures_total', detail: `${actorFailures} actor messages threw (tier_actor_failures_total); the node logged: ${JSON.stringify(rec.counts.serverLogErrors.toJSON()).slice(0, 300)}` });
  }
  const rssAfter = target.rss();
  const cpuAfter = target.cpuMs();
  const fuzzerUsage = process.cpuUsage(fuzzerCpu);
  const nodeCpu = cpuAfter === null ? null : cpuAfter - (target.generation === cpuGeneration ? (cpuBefore ?? 0) : 0);
  cpuGeneration = target.generation;

  finishing = true;
  if (progress) clearInterval(progress);
  h.stopped = true;
  if (target.spawned) await target.stop();
  await Promise.all([watcher, healthLoop]);
  if (fatal) throw fatal;

  const replayFiles = rec.writeViolationReplays();
  const durationMs = rec.now();
  const perSec = (n: number, ms: number | undefined) => (ms ? Math.round((n * 1000) / ms) : 0);
  return {
    seed: opts.seed,
    target: { spawned: target.spawned, cluster, httpUrl: target.httpUrl, pid: target.pid ?? null, restarts },
    durationMs,
    stoppedEarly: h.stopReason,
    sent: rec.sent,
    rates: { hubFramesPerSec: perSec(rec.sent.hubFrames, phaseMs.hub), appMessagesPerSec: perSec(rec.sent.appMessages, phaseMs.app), httpRequestsPerSec: perSec(rec.sent.httpRequests, phaseMs.http) },
    phaseMs,
    phases,
    hub: {
      framesByClass: rec.counts.hubFrames.toJSON(),
      control: rec.counts.hubControl.toJSON(),
      responsesByType: rec.counts.hubResponses.toJSON(),
      errorFramesByCode: rec.counts.hubErrorCodes.toJSON(),
      closesByCode: rec.counts.hubCloses.toJSON(),
      upgrades: rec.counts.hubUpgrades.toJSON(),
    },
    app: { replies: rec.counts.appReplies.toJSON(), closesByCode: rec.counts.appCloses.toJSON(), upgrades: rec.counts.appUpgrades.toJSON() },
    http: { statuses: rec.counts.httpStatuses.toJSON(), errorCodes: rec.counts.httpCodes.toJSON() },
    crashes: rec.crashes,
    quarantined: [...rec.crashClasses.map.entries()].filter(([, n]) => opts.crashRepeat > 0 && n >= opts.crashRepeat).map(([k]) => k),
    rss: { beforeBytes: rssBefore, afterBytes: rssAfter },
    cpu: { nodeMs: nodeCpu, fuzzerMs: Math.round((fuzzerUsage.user + fuzzerUsage.system) / 1000) },
    healthz: health,
    actorFailures: target.adminUrl ? actorFailures : null,
    serverErrorLogs: rec.counts.serverLogErrors.toJSON(),
    finalCheck,
    violations: rec.violations,
    violationCount: rec.violationCount,
    replayFiles,
    notes: rec.notes,
  };
}

/** A well-behaved hub connects, reports, and a command sent over the API round-trips to it. */
async function wellBehavedHub(h: Harness): Promise<{ ok: boolean; detail: string }> {
  const hubId = `fz-${h.runId}-final`;
  let client: HubClient | null = null;
  try {
    const secret = await h.provision(hubId, `fz-home-${h.runId}`);
    client = new HubClient({ url: h.target.wsUrl, hubId, secret, heartbeat: false, connectTimeoutMs: 10_000 });
    await client.connect();
    await client.report({ 'lamp-1': { on: false } });
    const res = await h.api('POST', `/v1/hubs/${hubId}/devices/lamp-1/commands`, { token: h.target.adminToken, body: { set: { on: true } } });
    const result = (res.json as { result?: { on?: unknown } } | null)?.result;
    if (res.status !== 200 || result?.on !== true) return { ok: false, detail: `command answered ${res.status} ${res.text.slice(0, 200)}` };
    return { ok: true, detail: 'connected, reported, and a set command round-tripped' };
  } catch (err) {
    return { ok: false, detail: `${(err as Error).name}: ${(err as Error).message}` };
  } finally {
    await client?.bye().catch(() => undefined);
  }
}
