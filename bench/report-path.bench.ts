/**
 * The report path in one process, without sockets: what the node's JavaScript spends per hub report.
 * `--hubs` hub sessions of the embedded default (LMDB shadows and history in a temporary DATA_DIR,
 * the memory bus with one subscriber per home standing in for the app fan-out) are handed report
 * frames as the gateway hands them (decoded, through the rate gate and the mailbox); each report is
 * stored, published with its position and acknowledged once durable. `--per-turn` reports per
 * event-loop turn, at most 4 turns unacknowledged, `--reports` in all.
 *
 * Printed, over the second half of the reports (the first compiles the code and fills the homes'
 * first history chunks): CPU per report (user + system, all threads) and the main thread's share of
 * it (event-loop utilization × wall time), reports/s, against the floor of the same run: decoding
 * the same frames and encoding an ack and the event for each (the JavaScript any relay does). Both
 * runs pay the harness alike: encoding each frame, and decoding each ack the server sends.
 * Without sockets, the kernel's cost of a report (one read, its ack's write) is not in either.
 *
 * With `--marks` each event's offset is noted in the history's rules marks, as a home of the rules
 * engine does for an event no rule listens to (the rest of the engine is not in this bench): the
 * per-report cost of keeping the marks (src/rules/replay.ts), against a run without.
 *
 * With `--instructions` it runs again under valgrind's callgrind and prints instructions per report
 * instead (the second half of each run's reports, every thread, no kernel): a figure that does not
 * move with this shared machine's speed, for comparing two versions of the code (a run of 20,000
 * reports takes a few minutes). `--cache` also simulates the caches (callgrind's `--cache-sim`)
 * and prints misses per report and cycles estimated from them: what instruction counts leave out.
 *
 *   node --import tsx bench/report-path.bench.ts [--hubs 1000] [--reports 100000] [--per-turn 200]
 *                                                [--data-sync commit|os] [--history 100|0] [--json]
 *                                                [--marks] [--instructions] [--cache]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FrameType, type ServerToHubFrame } from '../proto/frames.js';
import { subjects } from '../proto/subjects.js';
import {
  createLogger,
  decodeHubFrame,
  decodeServerFrame,
  diskPorts,
  encode,
  encodeBus,
  EventPublisher,
  HubErrorLog,
  HubSession,
  loadConfig,
  SessionIndex,
  ShadowPacker,
  TimerWheel,
  type HubLink,
} from '../src/internal.js';
import { encodeFrame, frames } from '../load/wire/frames.js';
import { printResult, runMain } from './lib/output.js';
import { cpuMeter } from './lib/cpu-meter.js';
import { gcMeter } from './lib/gc-meter.js';
import { counting, countUnderCallgrind, underCallgrind, type PhaseCount } from './lib/instructions.js';

const { values: args } = parseArgs({
  options: {
    hubs: { type: 'string', default: '1000' },
    reports: { type: 'string', default: '100000' },
    'per-turn': { type: 'string', default: '200' },
    'data-sync': { type: 'string', default: 'commit' },
    history: { type: 'string', default: '100' },
    json: { type: 'boolean', default: false },
    marks: { type: 'boolean', default: false },
    instructions: { type: 'boolean', default: false },
    cache: { type: 'boolean', default: false },
  },
});
const HUBS = Number(args.hubs);
const REPORTS = Number(args.reports);
const PER_TURN = Number(args['per-turn']);
const DEVICES = 8;
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
/** Under callgrind, the reports from here on are counted: a turn's first, at about half of them. */
const COUNT_FROM = Math.floor(REPORTS / 2 / PER_TURN) * PER_TURN;

/** What the node would write to a hub's socket: counted, acks told to the driver. */
class CountingLink implements HubLink {
  welcomed = false;
  /** the last sequence number acknowledged (the first sent is 1) */
  acked = 0;
  constructor(private readonly onAck: (link: CountingLink, seq: number) => void) {}
  send(bytes: Uint8Array): boolean {
    const f: ServerToHubFrame = decodeServerFrame(bytes);
    if (f.t === FrameType.welcome) this.welcomed = true;
    else if (f.t === FrameType.ack) this.onAck(this, f.s);
    return true;
  }
  close(): void {}
}

/** The frame a hub sends for report `n` (its `seq`-th frame): one device's attributes, every one a change. */
function reportBytes(seq: number, n: number): Uint8Array {
  return encodeFrame(frames.report(seq, { [`dev-${seq % DEVICES}`]: { on: seq % 2 === 0, level: n % 101, power: n * 0.25 } }));
}

interface Measured {
  reportsPerSec: number;
  cpuUsPerReport: number;
  mainUsPerReport: number;
  /** of `mainUsPerReport`, the main thread's time on a CPU (the rest: blocked, or waiting for a core) */
  mainCpuUsPerReport: number;
  /** the collector on the main thread: scavenges and the rest, µs per report; bytes promoted per report */
  gc: { scavenges: number; scavengeUs: number; otherUs: number; promotedBytes: number };
}

/**
 * Runs `step(i)` for i < REPORTS, PER_TURN per turn; `below(n)` resolves once at most n reports
 * are unacknowledged: a turn's reports wait for `below(4 turns)`, the end for `below(0)`.
 * The second half of the reports is timed, and under callgrind counted as `phase` (the first warms
 * the code); under callgrind each turn waits for `below(0)`.
 */
async function drive(phase: string, step: (i: number) => void, below: (n: number) => Promise<void>): Promise<Measured> {
  let stop: ReturnType<typeof cpuMeter> | null = null;
  let stopGc: ReturnType<typeof gcMeter> | null = null;
  const count = counting(phase);
  for (let i = 0; i < REPORTS; ) {
    // under callgrind each turn's reports are stored before the next turn's come: one commit per
    // turn, whatever the speed, so a count does not depend on how the store's commits fell
    await below(underCallgrind() ? 0 : PER_TURN * 4);
    if (i === COUNT_FROM) {
      // timed from the same report as counted: the first half compiles the code and grows the
      // homes' first chunks (timed from the first report, history cost 2–4 µs a report over
      // 150,000 reports and nothing over 1,000,000: BENCHMARKS.md, 2026-12-04)
      await count.start();
      stop = cpuMeter();
      stopGc = gcMeter();
    }
    for (let k = 0; k < PER_TURN && i < REPORTS; k++, i++) step(i);
    await turn();
  }
  await below(0);
  await count.end();
  const timed = REPORTS - COUNT_FROM;
  const { cpuUs, mainUs, mainCpuUs, wallMs } = stop!(timed);
  const gc = stopGc!(timed);
  const r2 = (x: number): number => Math.round(x * 100) / 100;
  return {
    gc: { scavenges: gc.scavenges, scavengeUs: r2(gc.scavengeUs), otherUs: r2(gc.otherUs), promotedBytes: Math.round(gc.promotedBytes) },
    reportsPerSec: Math.round((timed * 1000) / wallMs),
    cpuUsPerReport: r2(cpuUs),
    mainUsPerReport: r2(mainUs),
    mainCpuUsPerReport: r2(mainCpuUs),
  };
}

/** The floor: decode each frame, encode its ack and its event, as a relay's JavaScript would. */
async function floor(): Promise<Measured> {
  const sink: Uint8Array[] = [];
  return drive(
    'floor',
    (i) => {
      const f = decodeHubFrame(reportBytes(i + 1, i), 16_384);
      if (f.t !== FrameType.report) throw new Error('not a report');
      const ack = encode({ t: FrameType.ack, s: f.s });
      // read back as the server run's link reads each ack: the harness costs the same in both
      if (decodeServerFrame(ack).t !== FrameType.ack) throw new Error('not an ack');
      sink.push(ack);
      for (const d in f.r) sink.push(encodeBus({ op: 'evt', kind: 'state', home: 'home-0', hub: 'hub-0', device: d, attrs: f.r[d]!, version: i, ts: Date.now() }));
      if (sink.length > 1000) sink.length = 0;
    },
    async () => {},
  );
}

async function server(): Promise<Measured & { delivered: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'hubtier-report-path-'));
  const log = createLogger('silent');
  const { config } = loadConfig({ DATA_DIR: dir, DATA_SYNC: args['data-sync'], TIER_HISTORY_SIZE: args.history });
  const wheel = new TimerWheel();
  const ports = await diskPorts(config, wheel, log);
  const marks = args.marks ? ports.history?.marks : undefined;
  const events = new EventPublisher(ports.bus, ports.history, log, marks ? (event, _parent, offset) => offset !== undefined && marks.note(event.home, offset, false) : () => {});
  let delivered = 0;
  const homes = Math.max(1, Math.floor(HUBS / 10));
  for (let h = 0; h < homes; h++) ports.bus.subscribe(subjects.homeEvents(`home-${h}`), () => void delivered++);

  let outstanding = 0;
  // woken by the acks, not polled: a loop of turns while the store commits would be counted as the server's
  let waiting: { limit: number; resolve: () => void } | null = null;
  const below = (limit: number): Promise<void> =>
    outstanding <= limit ? Promise.resolve() : new Promise((resolve) => (waiting = { limit, resolve }));
  // acks are cumulative: one covers every frame of its hub up to it
  const onAck = (link: CountingLink, seq: number) => {
    if (seq <= link.acked) return;
    outstanding -= seq - link.acked;
    link.acked = seq;
    if (waiting !== null && outstanding <= waiting.limit) {
      waiting.resolve();
      waiting = null;
    }
  };
  const sessions: HubSession[] = [];
  const links: CountingLink[] = [];
  const deps = {
    system: { timers: wheel, log, mailboxSize: 128 },
    bus: ports.bus,
    directory: ports.directory,
    shadows: ports.shadows,
    nodeId: 'bench',
    heartbeatMs: 60_000,
    idleMs: 600_000,
    helloTimeoutMs: 60_000,
    maxFrameBytes: 16_384,
    ratePerSec: 1_000_000,
    rateBurst: 1_000_000,
    publishEvent: events.publish,
    hubErrors: new HubErrorLog(log),
    sessions: new SessionIndex<HubSession>(),
    // as the server has it (TIER_SHADOW_PACK_MS): every hub here reports within the period, so none is packed
    packer: new ShadowPacker(wheel, 5_000),
  };
  for (let h = 0; h < HUBS; h++) {
    const link = new CountingLink(onAck);
    const session = new HubSession(`hub-${h}`, `home-${h % homes}`, link, deps);
    session.receiveFrame(decodeHubFrame(encodeFrame(frames.hello(`boot-${h}`)), 16_384));
    links.push(link);
    sessions.push(session);
    if (h % 100 === 99) await turn();
  }
  while (links.some((l) => !l.welcomed)) await turn();
  // every hub lists its devices (sequence 1): reports then go to listed devices
  const list = Array.from({ length: DEVICES }, (_, d) => ({ d: `dev-${d}`, k: 'switch' }));
  for (const s of sessions) {
    outstanding++;
    s.receiveFrame(decodeHubFrame(encodeFrame(frames.devices(1, { f: true, j: list })), 16_384));
  }
  await below(0);

  // the hubs' online and device-list events are not the reports'
  const setup = delivered;
  const seqs = new Uint32Array(HUBS).fill(1);
  const result = await drive(
    'server',
    (i) => {
      const h = i % HUBS;
      const seq = ++seqs[h]!;
      outstanding++;
      sessions[h]!.receiveFrame(decodeHubFrame(reportBytes(seq, i), 16_384));
    },
    below,
  );
  await events.settled();
  if (delivered - setup !== REPORTS) throw new Error(`${delivered - setup} events delivered for ${REPORTS} reports`);
  await ports.close?.();
  wheel.close();
  rmSync(dir, { recursive: true, force: true });
  return { ...result, delivered: delivered - setup };
}

interface CachePerReport {
  l1Misses: number;
  i1Misses: number;
  llMisses: number;
  branches: number;
  mispredicted: number;
  cycles: number;
}

/**
 * `--cache`: a phase's simulated cache misses and mispredicted branches per report, and cycles
 * estimated by KCachegrind's rule (instructions + 10 per mispredicted branch + 10 per first-level
 * miss + 100 per last-level one): what instructions alone leave out of the CPU time (this VM has
 * no hardware counters to read the real ones).
 */
function cachePerReport(n: PhaseCount, reports: number): CachePerReport {
  const e = (name: string): number => n.events[name] ?? 0;
  const l1 = e('I1mr') + e('D1mr') + e('D1mw');
  const ll = e('ILmr') + e('DLmr') + e('DLmw');
  const bm = e('Bcm') + e('Bim');
  const per = (x: number): number => Math.round(x / reports);
  return { l1Misses: per(l1), i1Misses: per(e('I1mr')), llMisses: per(ll), branches: per(e('Bc') + e('Bi')), mispredicted: per(bm), cycles: per(e('Ir') + 10 * bm + 10 * l1 + 100 * ll) };
}

/** `--instructions` (`--cache`: with the caches simulated): this bench again under callgrind, its counts per report. */
async function instructions(): Promise<void> {
  const script = process.argv[1]!;
  const rest = process.argv.slice(2).filter((a) => a !== '--instructions' && a !== '--cache');
  const counts = await countUnderCallgrind(['--import', 'tsx', script, ...rest], { cache: args.cache });
  const counted = REPORTS - COUNT_FROM;
  const countOf = (phase: string): PhaseCount => {
    const n = counts.get(phase);
    if (n === undefined) throw new Error(`no count for ${phase} (is valgrind installed?)`);
    return n;
  };
  const per = (n: PhaseCount): { all: number; main: number } => ({ all: Math.round(n.all / counted), main: Math.round(n.main / counted) });
  const f = per(countOf('floor'));
  const s = per(countOf('server'));
  const ratio = (a: number, b: number): number => Math.round((a / b) * 100) / 100;
  const cache = args.cache ? { floor: cachePerReport(countOf('floor'), counted), server: cachePerReport(countOf('server'), counted) } : undefined;
  const out = { hubs: HUBS, reports: REPORTS, counted, perTurn: PER_TURN, dataSync: args['data-sync'], history: Number(args.history), floorInstructions: f, serverInstructions: s, ratio: ratio(s.all, f.all), mainRatio: ratio(s.main, f.main), ...(cache ? { cache, cycleRatio: ratio(cache.server.cycles, cache.floor.cycles) } : {}) };
  const lines = [
    `report path under callgrind, instructions per report (the last ${counted} of ${REPORTS} reports, user space), ${HUBS} hubs, DATA_SYNC=${args['data-sync']}, history ${args.history}`,
    `floor (decode, encode ack and event): ${f.all} (main thread ${f.main})`,
    `server (session, store, history, bus, ack): ${s.all} (main thread ${s.main})`,
    `server / floor: ${out.ratio} (main thread ${out.mainRatio})`,
  ];
  if (cache) {
    const line = (name: string, c: CachePerReport): string => `${name}: ${c.l1Misses} first-level misses (${c.i1Misses} of them instruction fetches), ${c.llMisses} last-level misses, ${c.mispredicted} of ${c.branches} branches mispredicted, ${c.cycles} cycles estimated`;
    lines.push('simulated caches and branches, per report, every thread (cycles estimated: instructions + 10 per mispredicted branch + 10 per first-level miss + 100 per last-level miss):', line('floor', cache.floor), line('server', cache.server), `server / floor, cycles estimated: ${out.cycleRatio}`);
  }
  const text = lines.join('\n');
  printResult(args.json, text, out);
}

const gcLine = (m: Measured): string => `${m.gc.scavengeUs} µs in ${m.gc.scavenges} scavenges, ${m.gc.otherUs} µs in other collections, ${m.gc.promotedBytes} B promoted`;

runMain('bench:report-path', async () => {
  if ((args.instructions || args.cache) && !underCallgrind()) return instructions();
  const f = await floor();
  const s = await server();
  const out = { hubs: HUBS, reports: REPORTS, perTurn: PER_TURN, dataSync: args['data-sync'], history: Number(args.history), floor: f, server: s, cpuRatio: Math.round((s.cpuUsPerReport / f.cpuUsPerReport) * 100) / 100 };
  const text = [
    `report path, ${REPORTS} reports from ${HUBS} hubs (${PER_TURN} per turn), DATA_SYNC=${args['data-sync']}, history ${args.history}`,
    `floor (decode, encode ack and event): ${f.cpuUsPerReport} µs CPU per report (main thread busy ${f.mainUsPerReport} µs, on a CPU ${f.mainCpuUsPerReport}), ${f.reportsPerSec}/s`,
    `server (session, store, history, bus, ack): ${s.cpuUsPerReport} µs CPU per report (main thread busy ${s.mainUsPerReport} µs, on a CPU ${s.mainCpuUsPerReport}), ${s.reportsPerSec}/s, ${s.delivered} events delivered (one per report)`,
    `server / floor, CPU per report: ${out.cpuRatio}`,
    `collector on the main thread, per report: floor ${gcLine(f)}; server ${gcLine(s)}`,
  ].join('\n');
  printResult(args.json, text, out);
});
