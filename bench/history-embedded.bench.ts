/**
 * What the embedded default's history (LmdbEventHistory) costs per event, against the in-memory
 * history of the same run as the floor (its logic without a store): appends paced at `--rate`
 * events/s over `--homes` homes for `--seconds`, the event bytes of a state event. Per variant:
 * the process's CPU per event (all threads: lmdb-js writes, and compresses, on threads of its own),
 * the sockets' (main) thread's CPU per event and its time in `appendNow`, the event-loop delay p99,
 * the mean of the process's ArrayBuffer memory (`process.memoryUsage().arrayBuffers`, sampled every
 * 100 ms: the LMDB history's open and unwritten chunks, the memory history's kept events),
 * and for LMDB its write transactions a second (each one a flush of `history.mdb` to disk with
 * `--data-sync commit`, the node's default; `os`, the default here, leaves flushing to the kernel).
 * Variants alternate for `--rounds`; each row is the median.
 *
 *   npm run bench:history-embedded -- [--rate 20000] [--homes 100] [--seconds 5] [--rounds 3] [--keep 100] [--data-sync os|commit]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { LmdbEventHistory, MemoryEventHistory, openDataStore, type DataSync, type EventHistory } from '../src/internal.js';
import { threadCpuMs } from '../load/harness/index.js';

const { values } = parseArgs({ options: { rate: { type: 'string', default: '20000' }, homes: { type: 'string', default: '100' }, seconds: { type: 'string', default: '5' }, rounds: { type: 'string', default: '3' }, keep: { type: 'string', default: '100' }, 'data-sync': { type: 'string', default: 'os' } } });
const SYNC = values['data-sync'] as DataSync;
if (SYNC !== 'os' && SYNC !== 'commit') throw new Error('--data-sync must be os or commit');
const RATE = Number(values.rate);
const HOMES = Number(values.homes);
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const retention = { maxEvents: Number(values.keep), maxAgeMs: 3_600_000 };
/** a state event's size on the wire (one device, two attributes) */
const EVENT = new Uint8Array(90).fill(7);
const TICK_MS = 5;

interface Row {
  cpuUs: number;
  mainUs: number;
  appendUs: number;
  loopP99Ms: number;
  /** write transactions a second (LMDB only) */
  commitsPerS: number;
  /** mean ArrayBuffer memory (MB) while appending */
  buffersMb: number;
}

/** Appends paced by the clock (a late tick appends what it missed) and what they cost. */
async function drive(history: EventHistory, commits = (): number => 0): Promise<Row> {
  const homes = Array.from({ length: HOMES }, (_, i) => `home-${i}`);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  let sent = 0;
  let appendNs = 0n;
  let buffers = 0;
  let samples = 0;
  let sampledAt = 0;
  const cpu0 = process.cpuUsage();
  const main0 = threadCpuMs(process.pid).get('main')!;
  loop.enable();
  await new Promise<void>((done) => {
    const start = performance.now();
    const tick = (): void => {
      const elapsed = performance.now() - start;
      const due = Math.floor((elapsed / 1000) * RATE);
      const t = process.hrtime.bigint();
      for (; sent < due; sent++) history.appendNow!(homes[sent % HOMES]!, EVENT);
      appendNs += process.hrtime.bigint() - t;
      if (elapsed - sampledAt >= 100) {
        sampledAt = elapsed;
        buffers += process.memoryUsage().arrayBuffers;
        samples++;
      }
      if (elapsed >= SECONDS * 1000) done();
      else setTimeout(tick, TICK_MS);
    };
    tick();
  });
  await history.close();
  loop.disable();
  const cpu = process.cpuUsage(cpu0);
  const mainMs = threadCpuMs(process.pid).get('main')! - main0;
  return { cpuUs: (cpu.user + cpu.system) / sent, mainUs: (mainMs * 1000) / sent, appendUs: Number(appendNs) / 1000 / sent, loopP99Ms: loop.percentile(99) / 1e6, commitsPerS: commits() / SECONDS, buffersMb: buffers / Math.max(1, samples) / 1e6 };
}

async function lmdbRound(): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'hubtier-history-bench-'));
  const store = openDataStore(dir, { sync: SYNC });
  let commits = 0;
  try {
    return await drive(await LmdbEventHistory.open(store, retention, { sweepMs: 0, batches: { flushed: () => commits++ } }), () => commits);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows: Record<'floor' | 'lmdb', Row[]> = { floor: [], lmdb: [] };
for (let r = 0; r < ROUNDS; r++) {
  rows.floor.push(await drive(new MemoryEventHistory(retention)));
  rows.lmdb.push(await lmdbRound());
}
const summary = (name: string, list: Row[]) => ({ name, cpuUs: median(list.map((x) => x.cpuUs)), mainUs: median(list.map((x) => x.mainUs)), appendUs: median(list.map((x) => x.appendUs)), loopP99Ms: median(list.map((x) => x.loopP99Ms)), commitsPerS: median(list.map((x) => x.commitsPerS)), buffersMb: median(list.map((x) => x.buffersMb)) });
const floor = summary('memory history (floor)', rows.floor);
const lmdb = summary('LMDB history', rows.lmdb);
process.stdout.write(`${RATE} events/s over ${HOMES} homes, ${retention.maxEvents} kept per home, ${SECONDS} s, DATA_SYNC=${SYNC}, medians of ${ROUNDS} alternating rounds\n\n`);
process.stdout.write(`${'variant'.padEnd(24)} ${'cpu µs/event'.padStart(13)} ${'main µs'.padStart(8)} ${'append µs'.padStart(10)} ${'loop p99 ms'.padStart(12)} ${'commits/s'.padStart(10)} ${'buffers MB'.padStart(11)}\n`);
for (const s of [floor, lmdb]) process.stdout.write(`${s.name.padEnd(24)} ${s.cpuUs.toFixed(2).padStart(13)} ${s.mainUs.toFixed(2).padStart(8)} ${s.appendUs.toFixed(2).padStart(10)} ${s.loopP99Ms.toFixed(2).padStart(12)} ${s.commitsPerS.toFixed(0).padStart(10)} ${s.buffersMb.toFixed(1).padStart(11)}\n`);
process.stdout.write(`\nLMDB / floor: cpu ${(lmdb.cpuUs / floor.cpuUs).toFixed(2)}, main thread ${(lmdb.mainUs / floor.mainUs).toFixed(2)}, append ${(lmdb.appendUs / floor.appendUs).toFixed(2)}, loop p99 ${(lmdb.loopP99Ms / floor.loopP99Ms).toFixed(2)}\n`);
