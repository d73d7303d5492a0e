// Over 400 lines: one benchmark; its six engine variants, their floors and the checks of what each stored share one run and one table.
/**
 * Which engine keeps the per-home event history in cluster mode (issue 11): Redis Streams through
 * `RedisEventHistory` (one stream per home, offsets from a Lua script) against a NATS JetStream
 * stream over per-home subjects, for the same workload, each against a floor measured in the same
 * run on the same server (a bare Redis PING; a bare core-NATS publish + flush).
 *
 * Variants, each on a fresh store (a key prefix of its own; the JetStream stream deleted and made
 * again), all driven by one loop in this process with at most `--concurrency` appends in flight
 * (as fast as that allows, or paced at `--rate` events/s), homes drawn by a seeded generator so every variant appends the same sequence:
 *
 * - `redis-ping`   floor: PING on its own connection
 * - `redis`        `RedisEventHistory.append`, no services' stream (`eventStreamMaxLen` 0)
 * - `redis+events` the same with the services' stream `<prefix>events` (`eventStreamMaxLen` 100000)
 * - `nats-flush`   floor: core publish + flush (a PING/PONG behind the publish)
 * - `js`           `js.publish` on `hist.<home>`, awaiting the ack (one stream sequence per event;
 *                  no per-home offset)
 * - `js-expect`    the equivalent of the Redis design: each publish carries
 *                  `Nats-Expected-Last-Subject-Sequence` (the home's previous event) and the home's
 *                  offset in a header, so one home's appends are serialised by their writer
 *
 * The stream: subjects `hist.*`, file storage, `max_msgs_per_subject` 100, `max_age` 1 h, direct
 * get allowed. Redis: retention 100 events / 1 h, append-only file fsynced every second unless
 * `--redis-aof no` (JetStream writes every message to its file and fsyncs on its own timer, 2 min).
 *
 * After the appends, `--reads` reads of the newest `--read-count` events of a random home, one at
 * a time: Redis `read(home, since = top - 50, top)`; JetStream a consumer filtered on the home's
 * subject starting at `opt_start_seq` (the stream sequence of the oldest wanted event, which the
 * reader must know: the app's position would have to carry it), fetched and deleted; and, for
 * comparison, 50 direct gets `next_by_subj` one after the other.
 *
 * Reported per variant: appends/s, append latency p50/p99 (hdr-histogram-js), ratios to the
 * floor, CPU µs per append of the server and of this process, read p50/p99.
 *
 *   npm run bench:history -- [--quick] [--events 60000] [--homes 200] [--concurrency 64] [--rate 0]
 *                            [--reads 400] [--read-count 50] [--redis-aof everysec|no]
 *                            [--order redis-first|nats-first] [--variants a,b,...] [--json]
 */
import { performance } from 'node:perf_hooks';
import { AckPolicy, DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, headers, nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Redis } from 'ioredis';
import { connectRedis, createLogger, encodeBus, RedisEventHistory, RedisKeys } from '../src/internal.js';
import { cpuMs, startNats, startRedis, uniquePrefix, type Backend } from '../load/harness/index.js';
import { commandLine, usageError } from '../load/lib/cli.js';
import { newHistogram, recordMs, summarize, table, type Histogram, type LatencySummary } from '../load/lib/histogram.js';

const USAGE = `Usage: npm run bench:history -- [options]
  --events N         appends per variant, after a warm-up of a tenth of them (default 60000; --quick 12000)
  --homes N          homes the events are spread over, uniformly (default 200)
  --concurrency N    appends in flight at most (default 64)
  --rate N           events/s to offer; 0: as fast as the concurrency allows (default 0)
  --reads N          reads of the newest --read-count events of a random home (default 400; --quick 100)
  --read-count N     events per read (default 50; at most 100, the retention)
  --redis-aof M      everysec | no: redis-server's append-only file (default everysec)
  --order O          redis-first | nats-first (default redis-first)
  --variants LIST    a subset of ${'redis-ping,redis,redis+events,nats-flush,js,js-expect'}
  --quick            shorter defaults
  --json             one JSON document on stdout instead of the tables
`;
const args = commandLine('bench:history', USAGE, {
  events: { type: 'string' },
  homes: { type: 'string', default: '200' },
  concurrency: { type: 'string', default: '64' },
  rate: { type: 'string', default: '0' },
  reads: { type: 'string' },
  'read-count': { type: 'string', default: '50' },
  'redis-aof': { type: 'string', default: 'everysec' },
  order: { type: 'string', default: 'redis-first' },
  variants: { type: 'string' },
  quick: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
});

const int = (name: string, value: string | undefined, fallback: number, min: number): number => {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isInteger(n) || n < min) usageError('bench:history', USAGE, `--${name} must be an integer ≥ ${min}, got ${value}`);
  return n;
};
const EVENTS = int('events', args.events, args.quick ? 12_000 : 60_000, 1);
const WARMUP = Math.ceil(EVENTS / 10);
const HOMES = int('homes', args.homes, 200, 1);
const CONCURRENCY = int('concurrency', args.concurrency, 64, 1);
const RATE = int('rate', args.rate, 0, 0);
const READS = int('reads', args.reads, args.quick ? 100 : 400, 0);
const READ_COUNT = int('read-count', args['read-count'], 50, 1);
const RETAINED = 100;
const MAX_AGE_MS = 3_600_000;
if (READ_COUNT > RETAINED) usageError('bench:history', USAGE, `--read-count must be at most ${RETAINED}`);
if (args['redis-aof'] !== 'everysec' && args['redis-aof'] !== 'no') usageError('bench:history', USAGE, '--redis-aof must be everysec or no');
if (args.order !== 'redis-first' && args.order !== 'nats-first') usageError('bench:history', USAGE, '--order must be redis-first or nats-first');

const REDIS_VARIANTS = ['redis-ping', 'redis', 'redis+events'] as const;
const NATS_VARIANTS = ['nats-flush', 'js', 'js-expect'] as const;
type Variant = (typeof REDIS_VARIANTS)[number] | (typeof NATS_VARIANTS)[number];
const ALL: readonly Variant[] = args.order === 'redis-first' ? [...REDIS_VARIANTS, ...NATS_VARIANTS] : [...NATS_VARIANTS, ...REDIS_VARIANTS];
const chosen = args.variants?.split(',') ?? ALL;
for (const v of chosen) if (!ALL.includes(v as Variant)) usageError('bench:history', USAGE, `unknown variant ${v}`);
const VARIANTS = ALL.filter((v) => chosen.includes(v));
const FLOOR_OF: Record<Variant, Variant> = { 'redis-ping': 'redis-ping', redis: 'redis-ping', 'redis+events': 'redis-ping', 'nats-flush': 'nats-flush', js: 'nats-flush', 'js-expect': 'nats-flush' };

const log = createLogger('silent');
const STREAM = 'HIST';
const homeId = (h: number): string => `home-${String(h).padStart(6, '0')}`;
const subjectOf = (home: string): string => `hist.${home}`;

/**
 * A state event of a home as the node publishes it on the bus (msgpack, ~150 bytes), one per home:
 * encoding is not what is measured.
 */
const PAYLOADS: Buffer[] = Array.from({ length: HOMES }, (_, h) =>
  encodeBus({ op: 'evt', kind: 'state', home: homeId(h), hub: `hub-${String(h).padStart(6, '0')}-a`, device: 'thermostat-hall', attrs: { temperature: 21.5, target: 22, mode: 'heat', battery: 87 }, version: 123_456, ts: 1_795_000_000_000 }),
);

/** The home of event i: mulberry32 from a fixed seed, so every variant appends the same homes in the same order. */
function homeSequence(n: number): Uint16Array {
  let s = 0x2f6b1a39;
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out[i] = (((t ^ (t >>> 14)) >>> 0) % HOMES) as number;
  }
  return out;
}
const SEQUENCE = homeSequence(WARMUP + EVENTS);

interface Drive {
  seconds: number;
  latency: Histogram;
  /** events that waited for one of the CONCURRENCY slots (paced: the offered rate was not kept up with) */
  waited: number;
}

/**
 * Runs `op(i)` for i in [from, to) with at most CONCURRENCY in flight, paced at RATE when set.
 * Latency counts from the op's start, so a paced run does not count the timer's lateness (the
 * events due during a sleep go out together); events that had to wait for a slot are counted.
 * Rejects with the first failure, after the ops in flight have settled.
 */
async function drive(from: number, to: number, op: (i: number) => Promise<void>): Promise<Drive> {
  const latency = newHistogram();
  let inFlight = 0;
  let waited = 0;
  let failure: { err: unknown } | null = null;
  let wake: (() => void) | null = null;
  const settled = (): void => {
    inFlight--;
    const w = wake;
    wake = null;
    w?.();
  };
  const start = performance.now();
  for (let i = from; i < to && failure === null; i++) {
    const due = RATE > 0 ? start + ((i - from) * 1000) / RATE : 0;
    while (RATE > 0 && due > performance.now()) await new Promise((r) => setTimeout(r, due - performance.now()));
    if (inFlight >= CONCURRENCY) waited++;
    while (inFlight >= CONCURRENCY) await new Promise<void>((r) => (wake = r));
    inFlight++;
    const t0 = performance.now();
    op(i).then(
      () => {
        recordMs(latency, performance.now() - t0);
        settled();
      },
      (err: unknown) => {
        failure ??= { err };
        settled();
      },
    );
  }
  while (inFlight > 0) await new Promise<void>((r) => (wake = r));
  const seconds = (performance.now() - start) / 1000;
  if (failure !== null) throw (failure as { err: unknown }).err;
  return { seconds, latency, waited };
}

/** What one variant does: its append, then its reads (null for a floor); `close` ends what it opened. */
interface Engine {
  append(i: number): Promise<void>;
  /** reads of the newest READ_COUNT events of random homes: latency per read method */
  reads?(): Promise<Record<string, Histogram>>;
  /** a check after the appends that the store holds what was appended; throws otherwise */
  verify?(): Promise<string>;
  close(): Promise<void>;
}

interface Result {
  variant: Variant;
  appendsPerSec: number;
  append: LatencySummary;
  /** server CPU (redis-server or nats-server) per append, µs */
  serverCpuUs: number;
  /** this process's CPU per append, µs */
  clientCpuUs: number;
  reads: Record<string, LatencySummary>;
  /** events of the measured run that waited for a free slot */
  waitedForSlot: number;
  note: string;
}

function pick<T>(list: readonly T[]): T {
  return list[Math.floor(Math.random() * list.length)]!;
}

function redisPing(client: Redis): Engine {
  return { append: async () => void (await client.ping()), close: async () => client.disconnect() };
}

function redisHistory(history: RedisEventHistory, keys: RedisKeys, probe: Redis, withEvents: boolean): Engine {
  return {
    append: async (i) => {
      const h = SEQUENCE[i]!;
      await history.append(homeId(h), PAYLOADS[h]!);
    },
    verify: async () => {
      let total = 0;
      for (let h = 0; h < HOMES; h++) total += (await history.position(homeId(h))).offset;
      if (total !== WARMUP + EVENTS) throw new Error(`redis: offsets add up to ${total}, appended ${WARMUP + EVENTS}`);
      const events = await probe.xlen(keys.single('events'));
      if (withEvents && events < Math.min(WARMUP + EVENTS, 100_000)) throw new Error(`redis: services' stream holds ${events}`);
      if (!withEvents && events !== 0) throw new Error(`redis: a services' stream with ${events} entries although disabled`);
      return `offsets add up to ${total}; services' stream ${events} entries`;
    },
    reads: async () => {
      const latency = newHistogram();
      const homes: string[] = [];
      for (let h = 0; h < HOMES; h++) if ((await history.position(homeId(h))).offset >= READ_COUNT) homes.push(homeId(h));
      for (let r = 0; r < READS; r++) {
        const home = pick(homes);
        const top = await history.position(home);
        const t = performance.now();
        const got = await history.read(home, { epoch: top.epoch, offset: top.offset - READ_COUNT }, top.offset, RETAINED);
        recordMs(latency, performance.now() - t);
        if (!got.ok || got.entries.length !== READ_COUNT || got.entries[0]!.offset !== top.offset - READ_COUNT + 1) throw new Error(`redis: read of ${home} gave ${JSON.stringify(got.ok ? got.entries.length : got)}`);
      }
      return { 'xrevrange (script)': latency };
    },
    close: async () => {
      await history.close();
      probe.disconnect();
    },
  };
}

function natsFlush(nc: NatsConnection): Engine {
  return {
    append: async (i) => {
      const h = SEQUENCE[i]!;
      nc.publish(`floor.${homeId(h)}`, PAYLOADS[h]!);
      await nc.flush();
    },
    close: async () => {},
  };
}

/** Per home, the stream sequences the bench was acknowledged (the newest RETAINED and some). */
class SeqLog {
  private readonly seqs = new Map<string, number[]>();

  add(home: string, seq: number): void {
    let list = this.seqs.get(home);
    if (!list) this.seqs.set(home, (list = []));
    list.push(seq);
    if (list.length > 4 * RETAINED) list.splice(0, list.length - RETAINED);
  }

  /** The newest `n` sequences of `home`, oldest first; null when it has fewer. */
  newest(home: string, n: number): number[] | null {
    const list = (this.seqs.get(home) ?? []).sort((a, b) => a - b);
    return list.length >= n ? list.slice(-n) : null;
  }

  homes(n: number): string[] {
    return [...this.seqs.keys()].filter((h) => (this.seqs.get(h)?.length ?? 0) >= n);
  }
}

async function freshStream(jsm: JetStreamManager): Promise<void> {
  try {
    await jsm.streams.delete(STREAM);
  } catch {
    // not there yet
  }
  await jsm.streams.add({
    name: STREAM,
    subjects: ['hist.*'],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_msgs_per_subject: RETAINED,
    max_age: nanos(MAX_AGE_MS),
    num_replicas: 1,
    allow_direct: true,
  });
}

function jetStreamHistory(js: JetStreamClient, jsm: JetStreamManager, expect: boolean): Engine {
  const log = new SeqLog();
  /** per home (js-expect): the writer's last sequence and offset, and its publish in flight */
  const homes = new Map<string, { seq: number; offset: number; tail: Promise<void> }>();
  let conflicts = 0;

  const plain = async (i: number): Promise<void> => {
    const h = SEQUENCE[i]!;
    const home = homeId(h);
    const ack = await js.publish(subjectOf(home), PAYLOADS[h]!);
    log.add(home, ack.seq);
  };

  const serial = (i: number): Promise<void> => {
    const h = SEQUENCE[i]!;
    const home = homeId(h);
    let state = homes.get(home);
    if (!state) homes.set(home, (state = { seq: 0, offset: 0, tail: Promise.resolve() }));
    const s = state;
    // the next event of a home waits for its previous ack: the expected sequence is that ack's
    const run = s.tail.then(async () => {
      const hdrs = headers();
      hdrs.set('Tier-Offset', String(s.offset + 1));
      try {
        const ack = await js.publish(subjectOf(home), PAYLOADS[h]!, { headers: hdrs, expect: { lastSubjectSequence: s.seq } });
        s.seq = ack.seq;
        s.offset++;
        log.add(home, ack.seq);
      } catch (err) {
        conflicts++;
        throw err;
      }
    });
    s.tail = run.catch(() => {});
    return run;
  };

  return {
    append: expect ? serial : plain,
    verify: async () => {
      const info = await jsm.streams.info(STREAM);
      const { messages, last_seq: last } = info.state;
      if (last !== WARMUP + EVENTS) throw new Error(`${STREAM}: last sequence ${last}, appended ${WARMUP + EVENTS}`);
      if (messages > HOMES * RETAINED) throw new Error(`${STREAM}: ${messages} messages kept, more than ${RETAINED} per home`);
      if (expect) {
        let offsets = 0;
        for (const s of homes.values()) offsets += s.offset;
        if (offsets !== WARMUP + EVENTS || conflicts > 0) throw new Error(`${STREAM}: offsets add up to ${offsets}, ${conflicts} refused`);
      }
      return `last seq ${last}, ${messages} kept${expect ? `; offsets add up to ${WARMUP + EVENTS}, ${conflicts} refused` : ''}`;
    },
    reads: async () => {
      const total = newHistogram();
      const create = newHistogram();
      const fetch = newHistogram();
      const remove = newHistogram();
      const direct = newHistogram();
      const candidates = log.homes(READ_COUNT);
      for (let r = 0; r < READS; r++) {
        const home = pick(candidates);
        const want = log.newest(home, READ_COUNT)!;
        const subject = subjectOf(home);
        // a consumer filtered on the home, from the oldest wanted sequence: create, fetch, delete
        const t0 = performance.now();
        const ci = await jsm.consumers.add(STREAM, {
          filter_subject: subject,
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: want[0]!,
          ack_policy: AckPolicy.None,
          mem_storage: true,
          num_replicas: 1,
          inactive_threshold: nanos(30_000),
        });
        const t1 = performance.now();
        if (ci.num_pending !== READ_COUNT) throw new Error(`${home}: consumer has ${ci.num_pending} pending, expected ${READ_COUNT}`);
        const c = js.consumers.getConsumerFromInfo(ci);
        const got: number[] = [];
        for await (const m of await c.fetch({ max_messages: READ_COUNT, expires: 5_000 })) got.push(m.seq);
        const t2 = performance.now();
        await c.delete();
        recordMs(total, t2 - t0);
        recordMs(create, t1 - t0);
        recordMs(fetch, t2 - t1);
        recordMs(remove, performance.now() - t2);
        if (got.join() !== want.join()) throw new Error(`${home}: consumer read ${got.length} events, not the ${READ_COUNT} appended`);
        // the same events by direct get, one request after the other (batches need server 2.11)
        const t = performance.now();
        const seqs: number[] = [];
        for (let seq = want[0]!; seqs.length < READ_COUNT; ) {
          const m = await jsm.direct.getMessage(STREAM, { seq, next_by_subj: subject });
          if (m === null) break;
          seqs.push(m.seq);
          seq = m.seq + 1;
        }
        recordMs(direct, performance.now() - t);
        if (seqs.join() !== want.join()) throw new Error(`${home}: direct gets read ${seqs.length} events, not the ${READ_COUNT} appended`);
      }
      return { 'consumer create+fetch': total, '  create': create, '  fetch': fetch, '  then delete': remove, [`direct get ×${READ_COUNT}`]: direct };
    },
    close: async () => {},
  };
}

async function measure(variant: Variant, backend: Backend, nc: NatsConnection | null): Promise<Result> {
  let engine: Engine;
  if (variant === 'redis-ping') {
    engine = redisPing(await connectRedis(backend.url, { name: 'bench:ping', log }));
  } else if (variant === 'redis' || variant === 'redis+events') {
    const keys = new RedisKeys(uniquePrefix());
    const withEvents = variant === 'redis+events';
    const client = await connectRedis(backend.url, { name: 'bench:history', log });
    const history = new RedisEventHistory(client, { maxEvents: RETAINED, maxAgeMs: MAX_AGE_MS }, { keys, log, eventStreamMaxLen: withEvents ? 100_000 : 0 });
    engine = redisHistory(history, keys, await connectRedis(backend.url, { name: 'bench:probe', log }), withEvents);
  } else if (variant === 'nats-flush') {
    engine = natsFlush(nc!);
  } else {
    const jsm = await jetstreamManager(nc!);
    await freshStream(jsm);
    engine = jetStreamHistory(jetstream(nc!), jsm, variant === 'js-expect');
  }
  try {
    await drive(0, WARMUP, engine.append);
    const server0 = cpuMs(backend.pid);
    const client0 = process.cpuUsage();
    const run = await drive(WARMUP, WARMUP + EVENTS, engine.append);
    const serverCpuUs = ((cpuMs(backend.pid) - server0) * 1000) / EVENTS;
    const c = process.cpuUsage(client0);
    const note = (await engine.verify?.()) ?? '';
    const reads = engine.reads && READS > 0 ? await engine.reads() : {};
    return {
      variant,
      appendsPerSec: Math.round(EVENTS / run.seconds),
      append: summarize(run.latency),
      serverCpuUs: Math.round(serverCpuUs * 10) / 10,
      clientCpuUs: Math.round(((c.user + c.system) / EVENTS) * 10) / 10,
      reads: Object.fromEntries(Object.entries(reads).map(([k, h]) => [k, summarize(h)])),
      waitedForSlot: run.waited,
      note,
    };
  } finally {
    await engine.close();
  }
}

const redisBackend = VARIANTS.some((v) => v.startsWith('redis')) ? await startRedis(args['redis-aof'] === 'everysec' ? { appendfsync: 'everysec' } : {}) : null;
const natsBackend = VARIANTS.some((v) => !v.startsWith('redis')) ? await startNats({ jetstream: true }) : null;
const nc = natsBackend ? await connect({ servers: natsBackend.url, name: 'bench:history' }) : null;
const results: Result[] = [];
try {
  for (const v of VARIANTS) {
    const backend = v.startsWith('redis') ? redisBackend! : natsBackend!;
    results.push(await measure(v, backend, nc));
    if (!args.json) process.stderr.write(`${v}: done\n`);
  }
} finally {
  await nc?.close();
  await Promise.all([redisBackend?.stop(), natsBackend?.stop()]);
}

const setup = {
  events: EVENTS,
  warmup: WARMUP,
  homes: HOMES,
  concurrency: CONCURRENCY,
  rate: RATE,
  reads: READS,
  readCount: READ_COUNT,
  payloadBytes: Math.round(PAYLOADS.reduce((s, p) => s + p.length, 0) / PAYLOADS.length),
  redisAof: args['redis-aof'],
  order: args.order,
};
if (args.json) {
  console.log(JSON.stringify({ setup, results }, null, 2));
} else {
  const byVariant = new Map(results.map((r) => [r.variant, r]));
  const ratio = (a: number, b: number | undefined): string => (b === undefined || b === 0 ? '-' : (a / b).toFixed(2));
  console.log(
    `${EVENTS} appends (+${WARMUP} warm-up) over ${HOMES} homes, ${setup.payloadBytes} B each, ${CONCURRENCY} in flight${RATE > 0 ? `, offered ${RATE}/s` : ''}; redis AOF ${setup.redisAof}; reads of the newest ${READ_COUNT}: ${READS}\n`,
  );
  const rows: Array<Array<string | number>> = [['variant', 'appends/s', 'p50 ms', 'p99 ms', 'rate ÷ floor', 'p50 ÷ floor', 'server µs/op', 'client µs/op', 'read p50 ms', 'read p99 ms']];
  for (const r of results) {
    const floor = byVariant.get(FLOOR_OF[r.variant]);
    const first = Object.values(r.reads)[0];
    rows.push([
      r.variant,
      r.appendsPerSec,
      r.append.p50Ms.toFixed(3),
      r.append.p99Ms.toFixed(3),
      ratio(r.appendsPerSec, floor?.appendsPerSec),
      ratio(r.append.p50Ms, floor?.append.p50Ms),
      r.serverCpuUs,
      r.clientCpuUs,
      first ? first.p50Ms.toFixed(3) : '-',
      first ? first.p99Ms.toFixed(3) : '-',
    ]);
  }
  console.log(table(rows));
  const readRows: Array<Array<string | number>> = [['variant', 'read', 'p50 ms', 'p99 ms', 'max ms']];
  for (const r of results) for (const [k, s] of Object.entries(r.reads)) readRows.push([r.variant, k, s.p50Ms.toFixed(3), s.p99Ms.toFixed(3), s.maxMs.toFixed(3)]);
  if (readRows.length > 1) console.log(`\n${table(readRows)}`);
  console.log('');
  for (const r of results) if (r.note || RATE > 0) console.log(`${r.variant}: ${[r.note, RATE > 0 ? `${r.waitedForSlot} events waited for a slot` : ''].filter((s) => s).join('; ')}`);
}
