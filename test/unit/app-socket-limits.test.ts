/**
 * App sockets are bounded at the upgrade, before the socket exists: per user token (`sub`,
 * TIER_MAX_APP_SOCKETS_PER_USER, refused 422 `limit_exceeded`) and per node (TIER_MAX_APP_SOCKETS,
 * refused 503 `busy` with Retry-After). Every way a socket ends gives its count back: the app
 * closing, the app vanishing, a revocation, a frame too large. One user token once opened 20,050
 * sockets and ran the node out of files.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppSocketLimits, defaultMaxAppSockets } from '../../src/transport/app-limits.js';
import { AppSocket } from '../helpers/app-socket.js';
import { eventually } from '../helpers/eventually.js';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';
import { api } from '../helpers/server-process.js';
import { upgradeAnswer } from '../helpers/upgrade-answer.js';

const ADMIN = 'app-limits-admin-token-0123456789';
const PER_USER = 3;
const PER_NODE = 5;

describe('AppSocketLimits', () => {
  it('holds each user to its bound and the node to its own; a close gives back what its open took', () => {
    const limits = new AppSocketLimits(4, 2);
    const alice = { kind: 'user', sub: 'alice', homes: [] } as never;
    const bob = { kind: 'user', sub: 'bob', homes: [] } as never;
    const admin = { kind: 'admin' } as never;
    expect([limits.tryOpen(alice), limits.tryOpen(alice), limits.tryOpen(alice)]).toEqual([null, null, 'user']);
    expect([limits.tryOpen(bob), limits.tryOpen(admin), limits.tryOpen(admin)]).toEqual([null, null, 'full']);
    limits.closed(alice);
    expect(limits.tryOpen(alice)).toBeNull();
    for (const p of [alice, alice, bob, admin]) limits.closed(p);
    expect({ sockets: limits.sockets, users: limits.users, refusals: limits.refusals }).toEqual({ sockets: 0, users: 0, refusals: { full: 1, memory: 0, user: 1 } });
  });

  it('refuses every app busy while the node is near its memory limit, counting nothing (review "memlimit")', () => {
    let near = true;
    const limits = new AppSocketLimits(4, 2, () => near);
    const alice = { kind: 'user', sub: 'alice', homes: [] } as never;
    expect([limits.tryOpen(alice), limits.tryOpen({ kind: 'admin' } as never)]).toEqual(['memory', 'memory']);
    expect(limits.message('memory')).toMatch(/near its memory limit: retry later/);
    expect({ sockets: limits.sockets, users: limits.users }).toEqual({ sockets: 0, users: 0 });
    near = false;
    expect(limits.tryOpen(alice)).toBeNull();
  });

  it('derives the node bound from the open-file limit less the hub sessions and the node’s own files', () => {
    expect(defaultMaxAppSockets(20_000, 19_000)).toBe(500);
    expect(defaultMaxAppSockets(1_048_576, 19_000)).toBe(1_048_576 - 19_500);
    // a limit that leaves no room still lets an operator in
    expect(defaultMaxAppSockets(1_024, 19_000)).toBe(64);
    expect(defaultMaxAppSockets(undefined, 19_000)).toBe(10_000);
    expect(defaultMaxAppSockets(Infinity, 19_000)).toBe(10_000);
  });
});

describe('app socket limits on a node (in-process)', () => {
  let node: InProcessNode;
  const open: AppSocket[] = [];

  beforeAll(async () => {
    node = await startInProcessNode(ADMIN, 'app-limits-jwt-secret-0123456789abcdef', { TIER_MAX_APP_SOCKETS: String(PER_NODE), TIER_MAX_APP_SOCKETS_PER_USER: String(PER_USER) });
  });

  afterAll(async () => {
    for (const s of open) s.ws.terminate();
    await node?.server.close();
  });

  const token = async (sub: string) => (await api(node.http, 'POST', '/v1/admin/tokens', ADMIN, { sub, homes: ['lim-home'] })).body.token as string;
  const connect = async (tok: string): Promise<AppSocket> => {
    const s = new AppSocket(`${node.wsUrl}/app/v1?token=${tok}`);
    open.push(s);
    await s.opened();
    return s;
  };
  const counted = async (): Promise<number> => {
    const res = await fetch(`http://127.0.0.1:${node.server.adminPort}/readyz`);
    return ((await res.json()) as { appSockets: { sockets: number } }).appSockets.sockets;
  };
  /** Waits until the node counts `n` app sockets (a close reaches it after the client sees it). */
  const countIs = (n: number, signal: AbortSignal) => eventually(signal, `${n} app sockets counted`, async () => ((await counted()) === n ? true : undefined));
  const refusal = async (tok: string) => upgradeAnswer(`${node.wsUrl}/app/v1?token=${tok}`, {});

  it('refuses a user past its bound with limit_exceeded before the upgrade, and takes it again after each kind of close', async ({ signal }) => {
    const alice = await token('lim-alice');
    const sockets = [await connect(alice), await connect(alice), await connect(alice)];
    expect(await refusal(alice)).toMatchObject({ status: 422, body: { code: 'limit_exceeded', num: 108, temporary: false, message: expect.stringContaining(`${PER_USER} app sockets`) } });
    await countIs(3, signal);

    // the app closes
    sockets[0]!.ws.close();
    await countIs(2, signal);
    sockets[0] = await connect(alice);
    expect(await refusal(alice)).toMatchObject({ status: 422 });

    // the app vanishes (no close frame)
    sockets[1]!.ws.terminate();
    await countIs(2, signal);
    sockets[1] = await connect(alice);

    // the server closes it: a frame over the limit (1009)
    sockets[2]!.ws.send('x'.repeat(20_000));
    expect((await sockets[2]!.closed).code).toBe(1009);
    await countIs(2, signal);
    sockets[2] = await connect(alice);
    expect(await refusal(alice)).toMatchObject({ status: 422 });

    // a revocation closes all of the user's (4007): none is counted any more
    expect((await api(node.http, 'POST', '/v1/admin/tokens/revoke', ADMIN, { sub: 'lim-alice' })).status).toBe(200);
    for (const s of sockets) expect((await s.closed).code).toBe(4007);
    await countIs(0, signal);
  });

  it('refuses anyone busy (503, Retry-After) once the node holds its maximum, the admin token too', async ({ signal }) => {
    const already = await counted();
    const bob = await token('lim-bob');
    const carol = await token('lim-carol');
    const held = [await connect(bob), await connect(bob), await connect(bob)];
    for (let i = already + 3; i < PER_NODE; i++) held.push(await connect(carol));
    const full = await refusal(carol);
    expect(full).toMatchObject({ status: 503, retryAfter: '1', body: { code: 'busy', temporary: true, message: expect.stringContaining(`${PER_NODE} app sockets`) } });
    expect(await refusal(ADMIN)).toMatchObject({ status: 503 });
    // one closed: a socket may open again
    held[0]!.ws.close();
    await countIs(PER_NODE - 1, signal);
    await connect(carol);
    for (const s of open) s.ws.terminate();
    await countIs(0, signal);
  });
});
