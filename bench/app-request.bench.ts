/**
 * Micro-benchmark of the app socket's request validation, the step of the `cmd` path between
 * JSON.parse and the session actor: the schema-compiled validator (src/protocol/app-codec.ts)
 * side by side with the hand-written one it replaced (kept below as the baseline, as of commit
 * 9751709), in one run, alternating rounds so drift on a shared machine hits both alike.
 * Reported: CPU ns per request (median of the rounds) and the ratio new / hand-written.
 *
 *   node --import tsx bench/app-request.bench.ts [--rounds 15] [--n 200000]
 */
import { parseArgs } from 'node:util';
import type { AppRequest } from '../proto/app.js';
import { isValidId } from '../proto/subjects.js';
import { attrs, params, ProtocolError, validateAppRequest } from '../src/internal.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string' }, n: { type: 'string' } } });
const ROUNDS = Number(args.rounds ?? 15);
const N = Number(args.n ?? 200_000);

// ---- baseline: the hand-written validator before schemas --------------------------------------
function fail(field: string, what: string): never {
  throw new ProtocolError('invalid_field', `${field}: ${what}`, { field });
}
function idOf(v: unknown, field: string): string {
  if (!isValidId(v)) fail(field, 'must be an id of 1..64 characters [A-Za-z0-9_-]');
  return v;
}
function handWritten(v: unknown): AppRequest {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ProtocolError('malformed_frame', 'a message must be an object');
  const m = v as Record<string, unknown>;
  if (typeof m.id !== 'number' || !Number.isSafeInteger(m.id) || m.id < 0) fail('id', 'must be a non-negative integer');
  const id = m.id;
  switch (m.op) {
    case 'sub':
    case 'unsub':
      return { op: m.op, id, home: idOf(m.home, 'home') };
    case 'ping':
      return { op: 'ping', id };
    case 'cmd': {
      const req: AppRequest = { op: 'cmd', id, hub: idOf(m.hub, 'hub'), device: idOf(m.device, 'device') };
      if (m.set !== undefined) req.set = attrs(m.set, 'set');
      else if (typeof m.method === 'string' && m.method.length > 0 && m.method.length <= 64) {
        req.method = m.method;
        req.params = m.params === undefined ? {} : params(m.params, 'params');
      } else fail('set', 'give "set" (attributes) or "method" (with optional "params")');
      if (m.timeoutMs !== undefined) {
        if (typeof m.timeoutMs !== 'number' || !Number.isInteger(m.timeoutMs) || m.timeoutMs <= 0) fail('timeoutMs', 'must be a positive integer');
        req.timeoutMs = m.timeoutMs;
      }
      return req;
    }
    default:
      fail('op', 'must be one of sub, unsub, cmd, ping');
  }
}

// ---- the requests: what apps send on the latency-critical path ---------------------------------
const CASES: Record<string, string> = {
  'cmd set': JSON.stringify({ op: 'cmd', id: 17, hub: 'hub-0042', device: 'lamp-3', set: { on: true, level: 80 }, timeoutMs: 5_000 }),
  'cmd method': JSON.stringify({ op: 'cmd', id: 18, hub: 'hub-0042', device: 'blinds', method: 'open', params: { position: 40, speed: { mode: 'quiet' } } }),
  'sub': JSON.stringify({ op: 'sub', id: 19, home: 'home-0042' }),
};

/** CPU time of this process per call, ns: other processes on a shared machine do not count. */
function cpuNs(body: () => number): number {
  const t0 = process.cpuUsage();
  const sink = body();
  const t = process.cpuUsage(t0);
  if (sink === -1) console.log(sink);
  return ((t.user + t.system) * 1e3) / N;
}

function run(validate: (v: unknown) => AppRequest, text: string): number {
  // parsed per request as the socket does: the validator never sees the same object twice
  return cpuNs(() => {
    let sink = 0;
    for (let i = 0; i < N; i++) sink += validate(JSON.parse(text)).id;
    return sink;
  });
}

/** JSON.parse alone: the floor both validators stand on. */
function floor(text: string): number {
  return cpuNs(() => {
    let sink = 0;
    for (let i = 0; i < N; i++) sink += (JSON.parse(text) as { id: number }).id;
    return sink;
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const schema = (v: unknown) => validateAppRequest(v, 60_000);

console.log(`node ${process.version}, ${N} requests per round, ${ROUNDS} rounds (median); CPU ns per request incl. JSON.parse`);
console.log('case        JSON.parse only  hand-written  schema (TypeBox)  schema / hand-written  (validation alone: hand / schema)');
for (const [name, text] of Object.entries(CASES)) {
  // both must accept the same request the same way before they are timed
  if (JSON.stringify(schema(JSON.parse(text))) !== JSON.stringify(handWritten(JSON.parse(text)))) throw new Error(`${name}: the validators disagree`);
  const f: number[] = [];
  const a: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    f.push(floor(text));
    a.push(run(handWritten, text));
    b.push(run(schema, text));
  }
  const [mf, ma, mb] = [median(f), median(a), median(b)];
  console.log(
    `${name.padEnd(12)}${mf.toFixed(0).padStart(15)}${ma.toFixed(0).padStart(14)}${mb.toFixed(0).padStart(18)}${(mb / ma).toFixed(2).padStart(23)}     ${(ma - mf).toFixed(0)} / ${(mb - mf).toFixed(0)} ns`,
  );
}
