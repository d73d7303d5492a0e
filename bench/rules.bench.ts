/**
 * Automation benchmark: rule-triggering hub events at a rising rate, through the node's event path
 * (encode + bus publish to a subscriber, as `publishEvent` does) with rules switched off and on,
 * side by side in one run. With rules on, each event also goes to the RulesEngine, which evaluates
 * on the piscina worker pool and runs the returned actions (commands to an in-process stub hub,
 * notifications to the memory push queue).
 *
 * Reported per rate and mode: events sent per second, rule evaluations per second, commands sent
 * to hubs per second, event → action latency (the engine receives the event → the first action
 * starts: the command leaves for the hub) p50/p95/p99, and event-loop delay p50/p99/max of the
 * main thread, the one that serves the sockets. "off" is the floor measured in the same run; the last column is the
 * ratio of the loop's p99 with rules on to the floor's.
 *
 *   node --import tsx bench/rules.bench.ts [--rates 250,500,1000,2000,4000,8000] [--seconds 3]
 *                                          [--homes 1000] [--threads N] [--rounds N] [--quick] [--json]
 *
 * With --rounds N, off and on alternate N times per rate and each row is the run with the median
 * loop p99 of its mode (a neighbour's burst on a shared machine then moves both, not one).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { AppEventMessage } from '../proto/app.js';
import type { Attrs } from '../proto/frames.js';
import { subjects } from '../proto/subjects.js';
import {
  createLogger,
  decodeValue,
  deviceKey,
  encodeBus,
  MemoryBus,
  MemoryPushQueue,
  MemoryRuleStore,
  noRuleMetrics,
  RulePool,
  RulesEngine,
  summarize,
  TimerWheel,
  validateRuleSpec,
  type DeviceRef,
  type DropReason,
  type RuleMetricsSink,
} from '../src/internal.js';

const { values: args } = parseArgs({
  options: {
    rates: { type: 'string' },
    seconds: { type: 'string' },
    homes: { type: 'string' },
    threads: { type: 'string' },
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  process.stdout.write(`${(await import('node:fs')).readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]}*/\n`);
  process.exit(0);
}

const RATES = (args.rates ?? (args.quick ? '500,2000,8000' : '250,500,1000,2000,4000,8000')).split(',').map(Number);
const SECONDS = Number(args.seconds ?? (args.quick ? 1.5 : 3));
const HOMES = Number(args.homes ?? 1000);
const THREADS = args.threads === undefined ? undefined : Number(args.threads);
const ROUNDS = Math.max(1, Number(args.rounds ?? 1));
const log = createLogger('silent');
const progress = (msg: string) => process.stderr.write(`${msg}\n`);

// ---- the node under test --------------------------------------------------------------------------

const timers = new TimerWheel({ onError: (err) => progress(`timer failed: ${String(err)}`) });
const bus = new MemoryBus(timers, log);
// an app feed on every home: the event path's own work (decode on the subscriber side)
let delivered = 0;
bus.subscribe('evt.>', (msg) => {
  decodeValue(msg.data);
  delivered++;
});

const store = new MemoryRuleStore();
const pool = new RulePool({ timers, ...(THREADS === undefined ? {} : { threads: THREADS }), maxQueue: 4_096 });
const push = new MemoryPushQueue({ sender: async () => {}, dedupTtlMs: 60_000 });

const lux = new Map<string, Attrs>();
let commands = 0;
let e2a: number[] = [];
const dropped: Partial<Record<DropReason, number>> = {};
const sink: RuleMetricsSink = {
  ...noRuleMetrics,
  eventToAction: (s) => void e2a.push(s * 1000),
  dropped: (reason) => void (dropped[reason] = (dropped[reason] ?? 0) + 1),
};

const engine = new RulesEngine({
  store,
  runner: pool,
  stateOf: async (refs: readonly DeviceRef[]) => {
    const out: Record<string, Attrs> = {};
    for (const r of refs) out[deviceKey(r.hub, r.device)] = lux.get(deviceKey(r.hub, r.device)) ?? {};
    return out;
  },
  runCommand: async () => {
    commands++;
    return { ok: true };
  },
  setDesired: async () => {},
  push: (n) => push.enqueue(n),
  timers,
  log,
  metrics: sink,
  maxBacklogPerHome: 1_024,
});

// every home: a motion rule with conditions (CEL), a threshold rule, a leak rule with a notification
const limit = { maxRuns: 1_000, windowMs: 1_000 };
for (let h = 0; h < HOMES; h++) {
  const home = `home-${h}`;
  const hub = `hub-${h}`;
  lux.set(deviceKey(hub, 'lux'), { lux: 12 });
  await store.createRule(
    home,
    validateRuleSpec({
      name: 'Hall light when dark',
      triggers: [{ type: 'state', hub, device: 'motion', attr: 'motion', to: true }],
      devices: { lux: { hub, device: 'lux' } },
      conditions: ['dev.lux.lux < 30', 'time.hour >= 0 && time.weekday >= 1'],
      actions: [{ type: 'command', hub, device: 'light', set: { on: true } }],
      limit,
    }),
  );
  await store.createRule(
    home,
    validateRuleSpec({
      name: 'Too warm',
      triggers: [{ type: 'state', hub, device: 'temp', attr: 't', above: 28 }],
      actions: [{ type: 'command', hub, device: 'fan', set: { on: true } }],
      limit,
    }),
  );
  await store.createRule(
    home,
    validateRuleSpec({
      name: 'Leak',
      triggers: [{ type: 'event', event: 'leak' }],
      actions: [
        { type: 'command', hub, device: 'valve', method: 'close' },
        { type: 'notify', title: 'Water leak', body: 'Leak at {{ event.device }}' },
      ],
      limit,
    }),
  );
}

// ---- the driver ---------------------------------------------------------------------------------

let seq = 0;
let version = 0;
/**
 * The next rule-triggering event, homes in turn. Per home, a cycle of five: motion on, motion off,
 * temperature 30 (crosses 28), temperature 25, leak; homes are at different points of it, so any
 * stretch of events mixes all five. Every event is evaluated; three in five act (light, fan,
 * valve + notification).
 */
function nextEvent(): AppEventMessage {
  const n = seq++;
  const h = n % HOMES;
  const round = Math.floor(n / HOMES);
  const home = `home-${h}`;
  const hub = `hub-${h}`;
  const ts = Date.now();
  const phase = (h + round) % 5;
  switch (phase) {
    case 0:
    case 1:
      return { op: 'evt', kind: 'state', home, hub, device: 'motion', attrs: { motion: phase === 0 }, version: ++version, ts };
    case 2:
    case 3:
      return { op: 'evt', kind: 'state', home, hub, device: 'temp', attrs: { t: phase === 2 ? 30 : 25 }, version: ++version, ts };
    default:
      return { op: 'evt', kind: 'event', home, hub, device: 'bath-leak', event: 'leak', ts: ts + n };
  }
}

function publishEvent(event: AppEventMessage, rules: boolean): void {
  bus.publish(subjects.hubEvents(event.home, event.hub), encodeBus(event));
  if (rules) engine.onEvent(event);
}

interface StepResult {
  rate: number;
  rules: boolean;
  sentPerS: number;
  evalsPerS: number;
  actionsPerS: number;
  e2a: { p50: number; p95: number; p99: number; count: number };
  loop: { p50: number; p99: number; max: number };
  /** CPU of the main thread (the one serving sockets) over the run's time, in % of one core */
  busy: number;
  dropped: number;
}

/** CPU time of this process's main thread (utime + stime of its task in /proc), ms; worker threads excluded. */
function mainThreadCpuMs(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields 14 and 15 of stat(5), counted from the state (field 3) here; clock ticks of 10 ms
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function step(rate: number, rules: boolean, seconds: number): Promise<StepResult> {
  await engine.idle();
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  const evals0 = engine.stats.totals().evaluated;
  const commands0 = commands;
  const dropped0 = Object.values(dropped).reduce((a, b) => a + b, 0);
  e2a = [];
  histogram.enable();
  const cpu0 = mainThreadCpuMs();
  const started = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const pump = () => {
      const elapsed = (performance.now() - started) / 1000;
      if (elapsed >= seconds) return resolve();
      const due = Math.floor(rate * elapsed);
      for (; sent < due; sent++) publishEvent(nextEvent(), rules);
      setTimeout(pump, 1);
    };
    pump();
  });
  const elapsed = (performance.now() - started) / 1000;
  const busy = (mainThreadCpuMs() - cpu0) / (elapsed * 1000);
  histogram.disable();
  const evals = engine.stats.totals().evaluated - evals0;
  const acts = commands - commands0;
  await engine.idle();
  const lat = summarize(e2a);
  const ns = (q: number) => histogram.percentile(q) / 1e6;
  return {
    rate,
    rules,
    sentPerS: sent / elapsed,
    evalsPerS: evals / elapsed,
    actionsPerS: acts / elapsed,
    e2a: { p50: lat.p50, p95: lat.p95, p99: lat.p99, count: lat.count },
    loop: { p50: ns(50), p99: ns(99), max: histogram.max / 1e6 },
    busy,
    dropped: Object.values(dropped).reduce((a, b) => a + b, 0) - dropped0,
  };
}

progress(`rules bench: node ${process.version}, ${cpus().length} cpus (${availableParallelism()} available), ${pool.stats().threads} rule worker thread(s), ${HOMES} homes × 3 rules`);
progress('warming up (workers start, rules compile)…');
await step(500, true, 1);
await push.drain();

const results: StepResult[] = [];
const medianByLoop = (runs: StepResult[]) => [...runs].sort((a, b) => a.loop.p99 - b.loop.p99)[Math.floor(runs.length / 2)]!;
for (const rate of RATES) {
  const runs: Record<'off' | 'on', StepResult[]> = { off: [], on: [] };
  for (let round = 1; round <= ROUNDS; round++) {
    for (const rules of [false, true]) {
      progress(`  ${rate} events/s, rules ${rules ? 'on' : 'off'}${ROUNDS > 1 ? `, round ${round}/${ROUNDS}` : ''}…`);
      runs[rules ? 'on' : 'off'].push(await step(rate, rules, SECONDS));
    }
  }
  results.push(medianByLoop(runs.off), medianByLoop(runs.on));
}
await push.drain();

// ---- report ---------------------------------------------------------------------------------------

const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
if (args.json) {
  process.stdout.write(`${JSON.stringify({ node: process.version, threads: pool.stats().threads, homes: HOMES, seconds: SECONDS, rounds: ROUNDS, results })}\n`);
} else {
  const header = ['rate/s', 'rules', 'sent/s', 'evals/s', 'commands/s', 'e2a p50', 'e2a p95', 'e2a p99', 'loop p50', 'loop p99', 'loop max', 'main cpu %', 'dropped', 'p99 ×off'];
  const rows: string[][] = [];
  for (const r of results) {
    const floor = results.find((x) => x.rate === r.rate && !x.rules)!;
    rows.push([
      String(r.rate),
      r.rules ? 'on' : 'off',
      f1(r.sentPerS),
      r.rules ? f1(r.evalsPerS) : '-',
      r.rules ? f1(r.actionsPerS) : '-',
      r.rules ? f2(r.e2a.p50) : '-',
      r.rules ? f2(r.e2a.p95) : '-',
      r.rules ? f2(r.e2a.p99) : '-',
      f2(r.loop.p50),
      f2(r.loop.p99),
      f2(r.loop.max),
      f1(r.busy * 100),
      String(r.dropped),
      r.rules ? f2(r.loop.p99 / floor.loop.p99) : '1.00',
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  process.stdout.write(`\nrule evaluation on ${pool.stats().threads} worker thread(s); latencies in ms; e2a = event → first action; loop = main-thread event-loop delay; main cpu = CPU of the main thread, % of one core\n`);
  process.stdout.write(`${line(header)}\n${line(widths.map((w) => '-'.repeat(w)))}\n`);
  for (const row of rows) process.stdout.write(`${line(row)}\n`);
  const totals = engine.stats.totals();
  process.stdout.write(
    `\ntotals: ${totals.evaluated} evaluations, ${totals.matched} matched, ${totals.actionsRun} actions, ${totals.errors} errors, ${totals.loopStops} loop stops; ` +
      `pool ${JSON.stringify(pool.stats())}; app feed delivered ${delivered}; dropped ${JSON.stringify(dropped)}\n`,
  );
}

await engine.close();
await pool.close();
await push.close();
await bus.close();
timers.close();
