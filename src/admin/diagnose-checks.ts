/**
 * The checks of self-diagnosis. Each verdict is a pure function of what was read (unit-tested
 * without a backend); the checks around them only read. Thresholds are written where they apply.
 */
import { readdir, readFile } from 'node:fs/promises';
import type { DataDisk } from './disk-metrics.js';
import { acceptedSetting, type SecretDifference } from '../auth/secret-digests.js';
import type { DiagnoseProbes, NodeRelease, RedisProbe } from '../ports/ports.js';
import type { RulePoolStats } from '../rules/pool.js';
import type { LoopLag } from '../transport/loop-lag.js';
import type { MemoryReading } from '../transport/cgroup-memory.js';
import { OWN_FILES, parseOpenFileLimit } from '../transport/app-limits.js';

export { parseOpenFileLimit };
import { ok, type Check, type Finding } from './diagnose.js';
import { evictionVerdict, persistenceVerdict, writesVerdict } from './diagnose-redis.js';

const ms = (n: number): string => `${n < 10 ? n.toFixed(1) : Math.round(n)} ms`;
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

/** @default 100 (ms): a backend round trip above this slows every command and handshake */
export const SLOW_ROUND_TRIP_MS = 100;

export function latencyVerdict(backend: string, rttMs: number): Finding {
  if (rttMs <= SLOW_ROUND_TRIP_MS) return ok(`reachable, round trip ${ms(rttMs)}`);
  return {
    verdict: 'warn',
    detail: `reachable, but a round trip takes ${ms(rttMs)}`,
    hint: `${backend} is slow or far away: every command or handshake pays this; put it in the nodes' zone or look at its load`,
  };
}

/** @default 500 (ms): directory expiry, cron leases and hub handshake timestamps compare clocks across machines */
export const SKEW_WARN_MS = 500;
/** @default 5_000 (ms) */
export const SKEW_FAIL_MS = 5_000;

/** The clock difference with Redis, less what the round trip leaves uncertain. */
export function skewVerdict(serverMs: number, localMs: number, rttMs: number): Finding {
  const skew = Math.max(0, Math.abs(localMs - serverMs) - rttMs / 2);
  const side = localMs > serverMs ? 'ahead of' : 'behind';
  if (skew <= SKEW_WARN_MS) return ok(`clock within ${ms(Math.max(skew, rttMs / 2))} of Redis`);
  return {
    verdict: skew > SKEW_FAIL_MS ? 'fail' : 'warn',
    detail: `this node's clock is ${ms(skew)} ${side} Redis's`,
    hint: 'sync the clocks (chrony or systemd-timesyncd on every host): directory entries expire early or late, cron firings and hub handshake timestamps are judged by them',
  };
}

export interface StreamState {
  length: number;
  maxLen: number;
  groups: Array<{ name: string; lag: number | null }>;
}

/** The services' event stream: trimmed near its MAXLEN, and no consumer group about to lose unread events. */
export function streamVerdict(s: StreamState): Finding {
  const groups = s.groups.length === 0 ? 'no consumer groups' : s.groups.map((g) => `${g.name} lag ${g.lag ?? '?'}`).join(', ');
  // MAXLEN ~ trims whole radix-tree nodes (100 entries by default): a little over is normal
  if (s.length > s.maxLen * 1.1 + 1_000) {
    return {
      verdict: 'warn',
      detail: `${s.length} entries, beyond its MAXLEN ${s.maxLen}`,
      hint: 'something else writes to the stream without MAXLEN, or TIER_EVENT_STREAM_MAXLEN differs between nodes: give every node the same value',
    };
  }
  const behind = s.groups.filter((g) => g.lag !== null && g.lag >= s.maxLen * 0.9);
  if (behind.length > 0) {
    return {
      verdict: 'warn',
      detail: `${s.length} of ${s.maxLen} entries; ${behind.map((g) => g.name).join(', ')} close to MAXLEN behind (${groups})`,
      hint: 'trimming will drop events these consumers have not read: scale them up, or raise TIER_EVENT_STREAM_MAXLEN',
    };
  }
  return ok(`${s.length} of ${s.maxLen} entries; ${groups}`);
}

/** @default 10: evaluations waiting per thread beyond which events wait noticeably for their rules */
export const QUEUE_PER_THREAD = 10;

export function poolVerdict(s: RulePoolStats): Finding {
  const since = `since start: ${s.completed} evaluations, ${s.timeouts} timed out, ${s.rejected} refused (queue full), ${s.workerErrors} worker errors`;
  if (s.threads === 0) return { verdict: 'fail', detail: `no rule worker threads; ${since}`, hint: 'rules do not run: look for worker start-up errors in the log ("rule worker")' };
  if (s.queued > s.threads * QUEUE_PER_THREAD) {
    return {
      verdict: 'warn',
      detail: `${s.queued} evaluations waiting for ${s.threads} threads; ${since}`,
      hint: 'rules lag behind events: give the node more CPU, or look for slow rules (their timeouts are in the log)',
    };
  }
  return ok(`${s.threads} threads, ${s.queued} waiting; ${since}`);
}

/** @default 100 (ms) p99: heartbeats and commands wait this long behind whatever blocks the loop */
export const LOOP_WARN_MS = 100;
/** @default 1_000 (ms) */
export const LOOP_FAIL_MS = 1_000;

export function loopDelayVerdict(p99Ms: number, maxMs: number, windowS: number): Finding {
  const detail = `event-loop delay p99 ${ms(p99Ms)}, max ${ms(maxMs)} over the last ${Math.round(windowS)} s`;
  if (p99Ms < LOOP_WARN_MS) return ok(detail);
  return {
    verdict: p99Ms >= LOOP_FAIL_MS ? 'fail' : 'warn',
    detail,
    hint: 'the node is CPU-bound or something blocks it: check its CPU limit (throttling), the sessions it holds, and a CPU profile (node --cpu-prof)',
  };
}

/** @default 0.8: share of the open-file limit in use that warns; 0.95 fails */
export const FD_WARN = 0.8;
export const FD_FAIL = 0.95;

/** Open files against the soft limit, and whether the limit leaves room for the hub and app socket limits. */
export function fdVerdict(open: number, soft: number, maxHubSessions: number, maxAppSockets = 0): Finding {
  const limit = Number.isFinite(soft) ? String(soft) : 'unlimited';
  const detail = `${open} of ${limit} files open (${Number.isFinite(soft) ? Math.round((open / soft) * 100) : 0} %)`;
  const raise = 'raise the open-file limit (ulimit -n, LimitNOFILE, the container runtime) or lower TIER_MAX_HUB_SESSIONS and TIER_MAX_APP_SOCKETS';
  if (open >= soft * FD_FAIL) return { verdict: 'fail', detail, hint: `new connections are about to be refused (EMFILE): ${raise}` };
  if (open >= soft * FD_WARN) return { verdict: 'warn', detail, hint: `the node is near its file limit: ${raise}` };
  // each hub session is a socket; the rest (backends, files, workers) needs a few hundred
  if (soft < maxHubSessions + maxAppSockets + OWN_FILES) {
    return { verdict: 'warn', detail: `${detail}; the limit is below TIER_MAX_HUB_SESSIONS (${maxHubSessions}) + TIER_MAX_APP_SOCKETS (${maxAppSockets}) + ${OWN_FILES}`, hint: `the node would run out of files before it is full: ${raise}` };
  }
  return ok(detail);
}

/** Open descriptors and their soft limit, from a procfs directory (`/proc/self`). */
export async function readFdUsage(procDir = '/proc/self'): Promise<{ open: number; soft: number }> {
  const [fds, limits] = await Promise.all([readdir(`${procDir}/fd`), readFile(`${procDir}/limits`, 'utf8')]);
  return { open: fds.length, soft: parseOpenFileLimit(limits) };
}

/** Room a session may need during a reconnect burst, beside the process's own ~100 MB (README, "A pod's memory limit"). */
const BURST_BYTES_PER_SESSION = 16 * 1024;
const PROCESS_BYTES = 100 * MIB;

/**
 * The node's memory cgroup: what the kernel cannot reclaim against the limit (`shedAbove`: the
 * fraction at which hub handshakes are refused), whether the limit leaves room for a burst of
 * TIER_MAX_HUB_SESSIONS reconnects; and V8's heap against its own limit, which is reached first
 * when Node sized it (half a pod's limit).
 */
export function memoryVerdict(r: MemoryReading, shedAbove: number, maxHubSessions: number): Finding {
  const heap = `heap ${(r.heapUsed / MIB).toFixed(0)} MiB of its ${(r.heapLimit / MIB).toFixed(0)} MiB limit (${Math.round((100 * r.heapUsed) / r.heapLimit)} %; 80 % of V8's, where V8 gives up when collections free little)`;
  if (shedAbove > 0 && r.heapUsed > r.heapLimit * shedAbove) {
    return {
      verdict: 'warn',
      detail: `${heap}: hub handshakes are refused (TIER_SHED_MEMORY ${shedAbove})`,
      hint: 'Node sizes the heap at about half a pod\'s memory limit: give it more with NODE_OPTIONS=--max-old-space-size=<MiB> (about three quarters of the limit), or lower TIER_MAX_HUB_SESSIONS or TIER_HUB_MAX_SHADOW_BYTES',
    };
  }
  const withHeap = (f: Finding): Finding => ({ ...f, detail: `${f.detail}; ${heap}` });
  return withHeap(cgroupVerdict(r, shedAbove, maxHubSessions));
}

function cgroupVerdict(r: MemoryReading, shedAbove: number, maxHubSessions: number): Finding {
  if (!Number.isFinite(r.limit)) return ok(`no memory limit (cgroup); ${(r.unreclaimable / MIB).toFixed(0)} MiB the kernel cannot reclaim`);
  const share = r.unreclaimable / r.limit;
  const detail = `${(r.unreclaimable / MIB).toFixed(0)} MiB of the ${(r.limit / MIB).toFixed(0)} MiB limit the kernel cannot reclaim (${Math.round(share * 100)} %)`;
  const raise = `raise the pod's memory limit (about 100 MB plus 16 KB a session) or lower TIER_MAX_HUB_SESSIONS`;
  if (shedAbove > 0 && share > shedAbove) return { verdict: 'warn', detail: `${detail}: hub handshakes are refused (TIER_SHED_MEMORY ${shedAbove})`, hint: `after a reconnect burst this passes within about half a minute; if it stays, ${raise}` };
  const needs = PROCESS_BYTES + maxHubSessions * BURST_BYTES_PER_SESSION;
  if (r.limit < needs) {
    return { verdict: 'warn', detail: `${detail}; the limit is below 100 MiB + 16 KiB × TIER_MAX_HUB_SESSIONS (${maxHubSessions}) = ${(needs / MIB).toFixed(0)} MiB`, hint: `a reconnect burst will be refused for memory before the node is full: ${raise}` };
  }
  return ok(detail);
}

export function bindingVerdict(packageName: string, native: boolean): Finding {
  if (native) return ok(`native uWebSockets.js from ${packageName}`);
  return {
    verdict: 'warn',
    detail: `${packageName} fell back to its JavaScript shim: several times slower, far fewer sessions per node`,
    hint: 'run a Node version the native binding supports (see the README on uWebSockets.js), and set UWS_REQUIRE_NATIVE=1 so a node refuses to start without it',
  };
}

/** Free space of the data directory: under 10 % or 1 GiB warns, under 1 % or 100 MiB fails. */
export function diskVerdict(dir: string, freeBytes: number, totalBytes: number): Finding {
  const share = totalBytes > 0 ? freeBytes / totalBytes : 0;
  const detail = `${dir}: ${(freeBytes / GIB).toFixed(1)} GiB free of ${(totalBytes / GIB).toFixed(1)} GiB (${Math.round(share * 100)} %)`;
  if (share < 0.01 || freeBytes < 100 * MIB) return { verdict: 'fail', detail, hint: 'writes are about to fail (hub registrations, shadows, history): free space or grow the volume now' };
  if (share < 0.1 || freeBytes < GIB) return { verdict: 'warn', detail, hint: 'free space or grow the volume; `npm run data -- backup` before it runs out' };
  return ok(detail);
}

/** This node's JWT_SECRET, ADMIN_TOKEN and TIER_SECRET_KEY against what the cluster recorded at its nodes' starts. */
export function sharedSecretsVerdict(recorded: boolean, differences: readonly SecretDifference[]): Finding {
  if (!recorded) return { verdict: 'warn', detail: 'the cluster holds no record of its shared secrets (deleted since this node started?)', hint: 'restart a node: the first to start records them again' };
  if (differences.length === 0) return ok('JWT_SECRET, ADMIN_TOKEN and TIER_SECRET_KEY agree with what the cluster recorded');
  const names = differences.map((d) => d.name).join(', ');
  const detail = differences.map((d) => d.detail).join('; ');
  const retired = differences.filter((d) => d.agreement === 'retired');
  if (retired.length > 0) {
    const fields = retired.map((d) => acceptedSetting(d.name)).join(' and ');
    return { verdict: 'fail', detail, hint: `a rotation's last roll, or a leak's, dropped that value and missed this node: restart it without it in ${fields} (README "Cluster secrets")` };
  }
  if (differences.some((d) => d.agreement === 'differs')) {
    return { verdict: 'fail', detail, hint: `another node started with another ${names} (a rotation, TIER_SECRETS_CHANGED) or this node has the wrong one: give every node the same value and restart the odd ones (docs/runbooks.md)` };
  }
  const hints = differences.map((d) =>
    d.name === 'TIER_SECRET_KEY'
      ? 'finish the key rotation: restart every node with the new TIER_SECRET_KEY and the old one in TIER_SECRET_KEYS_OLD (README "Hub secrets at rest")'
      : `finish the ${d.name} rotation: restart every node with the new value in ${d.name} and the old one accepted beside it (README "Cluster secrets")`,
  );
  return { verdict: 'warn', detail, hint: hints.join('; ') };
}

export function pushSenderVerdict(sender: DiagnoseProbes['pushSender']): Finding {
  if (sender === undefined || !sender.delivers) {
    return {
      verdict: 'warn',
      detail: `notifications of rule actions are written to the log, not delivered (sender: ${sender?.name ?? 'log'})`,
      hint: 'no push service is configured: set TIER_PUSH_WEBHOOK_URL and TIER_PUSH_WEBHOOK_SECRET to deliver them to your notification service (README "Push notifications: the webhook"); until then only the log shows them',
    };
  }
  if (sender.missing && sender.missing.length > 0) {
    return { verdict: 'fail', detail: `${sender.name}: ${sender.missing.join(', ')} not set`, hint: `set ${sender.missing.join(', ')}: deliveries fail and are retried until they expire` };
  }
  return ok(`${sender.name} configured`);
}

/** Node names listed per release before "and N more". */
const NODES_LISTED = 5;

/** One release on every live node, or which runs where (a rolling update under way, or stopped half-way). */
export function releasesVerdict(nodes: readonly NodeRelease[], own: string): Finding {
  const byRelease = new Map<string | null, string[]>();
  for (const n of nodes) byRelease.set(n.release, [...(byRelease.get(n.release) ?? []), n.node]);
  if (byRelease.size <= 1 && !byRelease.has(null)) return ok(`${nodes.length === 1 ? 'the one live node runs' : `all ${nodes.length} live nodes run`} ${own}`);
  const listed = [...byRelease].map(([release, names]) => {
    const shown = names.slice(0, NODES_LISTED).join(', ') + (names.length > NODES_LISTED ? ` and ${names.length - NODES_LISTED} more` : '');
    return `${release ?? 'an older release (says none)'} on ${shown}`;
  });
  return {
    verdict: 'warn',
    detail: `${byRelease.size} releases on ${nodes.length} live nodes (this one ${own}): ${listed.join('; ')}`,
    hint: 'a rolling update is under way or stopped half-way: until every node runs one release, what docs/runbooks.md "Upgrading a cluster" lists holds (a revocation by home or an erasure is not enforced by older nodes); finish the roll, or roll back',
  };
}

export interface DiagnoseContext {
  probes: DiagnoseProbes | undefined;
  /** cluster mode: this node's shared secrets against the cluster's record (src/compose/shared-secrets-check.ts) */
  sharedSecrets?: () => Promise<{ recorded: boolean; differences: SecretDifference[] }>;
  pool: () => RulePoolStats;
  /** this node's release (config `release`) */
  release: string;
  binding: { packageName: string; native: boolean };
  /** the embedded default's DATA_DIR on disk; undefined in cluster mode or in memory */
  dataDisk: DataDisk | undefined;
  maxHubSessions: number;
  /** @default 0: the node's TIER_MAX_APP_SOCKETS (set or derived) */
  maxAppSockets?: number;
  /** the node's event-loop sampler: each read covers the time since the previous one */
  loop: Pick<LoopLag, 'window'>;
  /** @default '/proc/self' */
  procDir?: string;
  /** the node's memory cgroup (undefined: none found, or TIER_SHED_MEMORY=0), and the fraction it sheds above */
  memory?: { reading: () => MemoryReading; shedAbove: number };
}

/** The checks that apply to this node: backend checks in cluster mode, the data directory in the embedded default. */
export function diagnoseChecks(ctx: DiagnoseContext): Check[] {
  const checks: Check[] = [];
  const { probes } = ctx;
  if (probes?.natsRtt) {
    const rtt = probes.natsRtt;
    checks.push({ name: 'nats', hintOnError: 'NATS is unreachable: commands across nodes and app events fail; check NATS_URL, the NATS pods and the network policy', run: async () => latencyVerdict('NATS', await rtt()) });
  }
  if (probes?.redis) checks.push(...redisChecks(probes.redis));
  const releases = probes?.releases;
  if (releases) checks.push({ name: 'releases', hintOnError: 'Redis is unreachable or hung: which release each node runs cannot be read; check REDIS_URL', run: async () => releasesVerdict(await releases(), ctx.release) });
  const secrets = ctx.sharedSecrets;
  if (secrets) {
    checks.push({
      name: 'cluster-secrets',
      hintOnError: 'Redis is unreachable or hung: the record of the shared secrets cannot be read; check REDIS_URL',
      run: async () => {
        const r = await secrets();
        return sharedSecretsVerdict(r.recorded, r.differences);
      },
    });
  }
  checks.push(
    { name: 'rule-workers', hintOnError: 'the rule pool does not answer: look at the log', run: async () => poolVerdict(ctx.pool()) },
    {
      name: 'event-loop',
      hintOnError: '',
      run: async () => {
        const r = ctx.loop.window();
        return loopDelayVerdict(r.p99Ms, r.maxMs, r.windowS);
      },
    },
    {
      name: 'file-descriptors',
      hintOnError: 'cannot read /proc (not Linux?): check `ulimit -n` against TIER_MAX_HUB_SESSIONS by hand',
      run: async () => {
        const u = await readFdUsage(ctx.procDir);
        return fdVerdict(u.open, u.soft, ctx.maxHubSessions, ctx.maxAppSockets);
      },
    },
    { name: 'uws-binding', hintOnError: '', run: async () => bindingVerdict(ctx.binding.packageName, ctx.binding.native) },
  );
  const memory = ctx.memory;
  if (memory) checks.push({ name: 'memory', hintOnError: '', run: async () => memoryVerdict(memory.reading(), memory.shedAbove, ctx.maxHubSessions) });
  if (ctx.dataDisk !== undefined) {
    const disk = ctx.dataDisk;
    checks.push({
      name: 'data-dir',
      hintOnError: 'cannot read the data directory: check DATA_DIR and its volume mount',
      run: async () => {
        const s = disk.space();
        return diskVerdict(disk.dir, s.free, s.size);
      },
    });
  }
  checks.push({ name: 'push-sender', hintOnError: '', run: async () => pushSenderVerdict(probes?.pushSender) });
  return checks;
}

function redisChecks(redis: RedisProbe): Check[] {
  const down = 'Redis is unreachable or hung: new hub handshakes and shadow writes fail until it answers; check REDIS_URL, the Redis pod and its memory';
  return [
    { name: 'redis', hintOnError: down, run: async () => latencyVerdict('Redis', await redis.ping()) },
    {
      name: 'redis-persistence',
      hintOnError: down,
      run: async () => {
        const [appendonly, save] = await Promise.all([redis.config('appendonly'), redis.config('save')]);
        if (appendonly !== undefined) return persistenceVerdict(appendonly, save);
        // CONFIG refused (managed Redis): INFO tells whether the append-only file is on
        const info = await redis.info('persistence');
        return persistenceVerdict(info.aof_enabled === undefined ? undefined : info.aof_enabled === '1' ? 'yes' : 'no', undefined);
      },
    },
    {
      name: 'redis-eviction',
      hintOnError: down,
      run: async () => {
        const info = await redis.info('memory');
        return evictionVerdict(info.maxmemory_policy ?? (await redis.config('maxmemory-policy')), info.maxmemory);
      },
    },
    {
      name: 'redis-writes',
      hintOnError: down,
      run: async () => {
        const [refusal, memory] = await Promise.all([redis.writeRefusal(), redis.info('memory')]);
        return writesVerdict(refusal, memory);
      },
    },
    {
      name: 'event-stream',
      hintOnError: down,
      run: async () => {
        const s = await redis.eventStream();
        return s === null ? ok('off (no history, or TIER_EVENT_STREAM_MAXLEN=0)') : streamVerdict(s);
      },
    },
    {
      name: 'clock-skew',
      hintOnError: down,
      run: async () => {
        const t = await redis.time();
        return skewVerdict(t.serverMs, t.localMs, t.rttMs);
      },
    },
  ];
}
