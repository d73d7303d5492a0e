/**
 * Micro-benchmark of a user token's verification, the first step of every app socket upgrade and
 * every HTTP request with a user token: the node's `Authenticator.fromToken` (fast-jwt, synchronous)
 * side by side with `jose`'s `jwtVerify` (WebCrypto, which the node used before), in one run,
 * alternating rounds. Reported per token, median of the rounds: wall µs one at a time (what a
 * request waits), and CPU µs with 64 in flight (what a node pays when many arrive at once).
 *
 *   node --import tsx bench/token-verify.bench.ts [--rounds 7] [--n 20000]
 */
import { parseArgs } from 'node:util';
import { jwtVerify } from 'jose';
import { Authenticator, RevocationList } from '../src/internal.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string' }, n: { type: 'string' } } });
const ROUNDS = Number(args.rounds ?? 7);
const N = Number(args.n ?? 20_000);
const SECRET = 'token-verify-bench-secret-0123456789';
// with the revocation list every node consults (empty here, as on most nodes most of the time)
const auth = new Authenticator('token-verify-bench-admin-token', SECRET, { revoked: new RevocationList() });
const key = new TextEncoder().encode(SECRET);
const token = await auth.issue('bench', ['home-1', 'home-2'], 3600);

type Verify = () => Promise<unknown>;
const variants: Record<string, Verify> = {
  'fast-jwt (node)': () => auth.fromToken(token),
  'jose (WebCrypto)': () => jwtVerify(token, key, { algorithms: ['HS256'] }),
};

async function oneAtATime(verify: Verify): Promise<number> {
  const t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await verify();
  return Number(process.hrtime.bigint() - t) / N / 1000;
}

async function inFlight(verify: Verify): Promise<number> {
  const cpu = process.cpuUsage();
  for (let i = 0; i < N; i += 64) await Promise.all(Array.from({ length: 64 }, verify));
  const used = process.cpuUsage(cpu);
  return (used.user + used.system) / N;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const wall: Record<string, number[]> = {};
const cpu: Record<string, number[]> = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, verify] of Object.entries(variants)) {
    (wall[name] ??= []).push(await oneAtATime(verify));
    (cpu[name] ??= []).push(await inFlight(verify));
  }
}
console.log(`token verification, ${N} tokens × ${ROUNDS} rounds (median)`);
for (const name of Object.keys(variants)) console.log(`  ${name.padEnd(18)} ${median(wall[name]!).toFixed(1).padStart(7)} µs one at a time   ${median(cpu[name]!).toFixed(1).padStart(6)} µs CPU with 64 in flight`);
const ratio = (m: Record<string, number[]>) => (median(m['jose (WebCrypto)']!) / median(m['fast-jwt (node)']!)).toFixed(1);
console.log(`  jose ÷ fast-jwt: ${ratio(wall)}× wall, ${ratio(cpu)}× CPU`);
