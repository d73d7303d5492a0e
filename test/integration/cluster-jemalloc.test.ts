import { existsSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { HubClient } from '../../load/wire/hub-client.js';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/**
 * A cluster node with jemalloc preloaded takes hub handshakes in a row. It used to answer them after
 * the Redis nonce claim, through `res.cork`, which in uWS v20.30 reads the socket's freed memory
 * (uNetworking/uWebSockets#1928): with jemalloc the node died of SIGSEGV within 3,900 to 9,700
 * handshakes in every run, and so refused to start with it. It now answers the upgrade first and
 * admits after it (PROTOCOL.md 2.1). 2,000 hubs at once, five times: the old path's node died in
 * the first round (two tries of two, with the gateway made to take it again).
 */

/** Debian's jemalloc (a dependency of its redis-server package, which the integration tests need) */
const JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
const ADMIN = 'jemalloc-admin-token-0123456789';
const HUBS = 2000;
const ROUNDS = 5;

let nats: Backend;
let redis: Backend;
let node: ServerProcess;

beforeAll(async () => {
  if (!existsSync(JEMALLOC)) return;
  [nats, redis] = await Promise.all([startNats(), startRedis()]);
  node = await startServerProcess({
    ADMIN_TOKEN: ADMIN,
    JWT_SECRET: 'jemalloc-jwt-secret-0123456789abcdef',
    NATS_URL: nats.url,
    REDIS_URL: redis.url,
    TIER_REDIS_PREFIX: uniquePrefix(),
    LD_PRELOAD: JEMALLOC,
    // the rounds below reconnect the same hubs at once
    TIER_HUB_CONNECT_RATE: '100000',
    TIER_MAX_PENDING_UPGRADES: '10000',
  });
});
afterAll(async () => {
  await node?.stop();
  await Promise.all([nats?.stop(), redis?.stop()]);
});

it.skipIf(!existsSync(JEMALLOC))(`takes ${HUBS * ROUNDS} hub handshakes in a row with jemalloc preloaded`, { timeout: 300_000 }, async () => {
  const ready = await api(node.adminUrl, 'GET', '/readyz', undefined);
  expect(ready.body).toMatchObject({ ready: true, mode: 'cluster' });
  // jemalloc is in the node (its malloc_trim says so: it only trims glibc's arenas)
  expect(node.logs).toContainEqual(expect.objectContaining({ reason: "libjemalloc.so.2 replaces glibc's malloc" }));
  const items = Array.from({ length: HUBS }, (_, i) => ({ hubId: `jm-${i}`, homeId: `jm-home-${i % 20}` }));
  const secrets = new Map<string, string>();
  for (let i = 0; i < HUBS; i += 1_000) {
    const made = await api(node.httpUrl, 'POST', '/v1/admin/hubs:batch', ADMIN, { hubs: items.slice(i, i + 1_000) });
    expect(made.body).toMatchObject({ failed: 0 });
    for (const r of made.body.results as Array<{ hubId: string; secret: string }>) secrets.set(r.hubId, r.secret);
  }
  let welcomed = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const clients = items.map(({ hubId }) => new HubClient({ url: node.wsUrl, hubId, secret: secrets.get(hubId)!, heartbeat: false }));
    await Promise.all(clients.map(async (c) => c.connect().then(() => welcomed++)));
    await Promise.all(clients.map((c) => c.terminate()));
  }
  expect(welcomed).toBe(HUBS * ROUNDS);
  expect(node.child.exitCode).toBeNull();
  expect(node.child.signalCode).toBeNull();
});
