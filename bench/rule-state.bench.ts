/**
 * The state a rule's evaluation reads on the node's main thread: one device named on each of
 * `--hubs` hubs of `--devices` devices (each listed with its kind and model, then reported), read as until 2026-12-06 (`load`: each hub whole) and as
 * now (`loadDevices`: the named devices alone), in the memory store, LMDB and Redis (its own
 * redis-server). Reported: µs of wall time an evaluation's read takes (one at a time, so it is the
 * main thread's time plus, for Redis, the round trips), and the ratio of the two.
 *
 *   node --import tsx bench/rule-state.bench.ts [--hubs 20] [--devices 512] [--reads 200] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectRedis, createLogger, emptyDevice, LmdbShadowStore, MemoryShadowStore, openDataStore, RedisKeys, RedisShadowStore, type ShadowStore } from '../src/internal.js';
import { startRedis } from '../load/harness/index.js';

const { values: args } = parseArgs({ options: { hubs: { type: 'string', default: '20' }, devices: { type: 'string', default: '512' }, reads: { type: 'string', default: '200' }, json: { type: 'boolean', default: false } } });
const hubs = Number(args.hubs);
const devices = Number(args.devices);
const reads = Number(args.reads);
const log = createLogger('silent');

async function fill(store: ShadowStore): Promise<void> {
  // every real hub sends its device list (kinds and models) before it reports
  for (let h = 0; h < hubs; h++) await store.writeDevices(`hub-${h}`, Array.from({ length: devices }, (_, d) => ({ d: `dev-${d}`, k: d % 2 === 0 ? 'switch' : 'sensor.temp', m: `model-${d % 7}` })), [], true);
  for (let h = 0; h < hubs; h++) {
    for (let d = 0; d < devices; d++) {
      store.writeReported(`hub-${h}`, `dev-${d}`, { ...emptyDevice(), reported: { on: d % 2 === 0, level: d, temp: 20.5, label: `device ${d}` }, reportedVersion: 1, reportedAt: Date.now() });
    }
  }
  await store.flush();
}

/** µs one evaluation's read takes: every hub, one after another as the rule's reads are awaited together. */
async function measure(read: (hub: string) => Promise<unknown>): Promise<number> {
  const all = () => Promise.all(Array.from({ length: hubs }, (_, h) => read(`hub-${h}`)));
  for (let i = 0; i < 10; i++) await all();
  const started = performance.now();
  for (let i = 0; i < reads; i++) await all();
  return ((performance.now() - started) / reads) * 1000;
}

const rows: Array<{ store: string; wholeUs: number; namedUs: number; ratio: number }> = [];
async function run(name: string, store: ShadowStore): Promise<void> {
  await fill(store);
  const wholeUs = await measure((hub) => store.load(hub));
  const namedUs = await measure((hub) => store.loadDevices(hub, ['dev-7']));
  rows.push({ store: name, wholeUs, namedUs, ratio: wholeUs / namedUs });
}

await run('memory', new MemoryShadowStore());
const dir = mkdtempSync(join(tmpdir(), 'rule-state-'));
const data = openDataStore(dir);
try {
  await run('lmdb', new LmdbShadowStore(data, { log }));
} finally {
  await data.close();
  rmSync(dir, { recursive: true, force: true });
}
const redis = await startRedis();
try {
  const store = new RedisShadowStore(await connectRedis(redis.url, { name: 'bench-rule-state', log }), { log, keys: new RedisKeys('bench:') });
  await run('redis', store);
  await store.close();
} finally {
  await redis.stop();
}

if (args.json) process.stdout.write(`${JSON.stringify({ hubs, devices, reads, rows })}\n`);
else {
  process.stdout.write(`a rule naming one device on each of ${hubs} hubs of ${devices} devices: µs an evaluation's state read\n`);
  for (const r of rows) process.stdout.write(`${r.store.padEnd(7)} whole hubs ${r.wholeUs.toFixed(0).padStart(7)} µs   named devices ${r.namedUs.toFixed(0).padStart(5)} µs   ${r.ratio.toFixed(1)}×\n`);
}
