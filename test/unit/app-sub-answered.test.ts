/**
 * A node answers every `sub`, also one whose subscription ends while its feed is still starting
 * (the history's position read is a Redis round trip in cluster mode): an `unsub` sent right after
 * it (a component mounted and unmounted at once) gets it `not_found`, a revocation of the home
 * `forbidden`. Before, such a `sub` went unanswered, and the client library closed the healthy
 * socket as stuck after subscribeTimeoutMs (4102). Position reads are held here until released.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppSocket } from '../helpers/app-socket.js';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';
import { api } from '../helpers/server-process.js';
import type { EventHistory } from '../../src/ports/history/history.js';

const ADMIN = 'sub-answered-admin-token-0123456789';
let node: InProcessNode;
/** while holding, position reads wait for `release`; `reached` resolves at the first held read */
const held: Array<() => void> = [];
let holding = false;
let reached: Promise<void> = Promise.resolve();
let onReach = () => {};
const hold = () => {
  holding = true;
  reached = new Promise((resolve) => (onReach = resolve));
};

beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'sub-answered-jwt-secret-0123456789abcdef');
  const history = node.ports.history as EventHistory;
  const position = history.position.bind(history);
  history.position = async (homeId) => {
    if (holding) {
      onReach();
      await new Promise<void>((resolve) => held.push(resolve));
    }
    return position(homeId);
  };
});
afterAll(async () => {
  await node?.server.close();
});

const admin = (method: string, path: string, body?: unknown) => api(node.http, method, path, ADMIN, body);
const release = () => {
  holding = false;
  for (const go of held.splice(0)) go();
};

async function socket(sub: string, homes: string[]): Promise<AppSocket> {
  const token = (await admin('POST', '/v1/admin/tokens', { sub, homes })).body.token as string;
  const app = new AppSocket(`${node.wsUrl}/app/v1?token=${token}`);
  await app.opened();
  return app;
}

describe('a sub whose subscription ends before its answer', () => {
  it('is answered not_found after an unsub, and the socket goes on', async () => {
    const app = await socket('sa-ann', ['sa-home', 'sa-other']);
    hold();
    // ids of their own: request() numbers from 1
    app.send({ op: 'sub', id: 101, home: 'sa-home', since: { epoch: 'e', offset: 0 } });
    app.send({ op: 'unsub', id: 102, home: 'sa-home' });
    expect(await app.next((m) => m.id === 102)).toEqual({ op: 'ok', id: 102 });
    await reached;
    release();
    expect(await app.next((m) => m.id === 101)).toMatchObject({ op: 'err', id: 101, code: 'not_found', msg: 'the subscription to home sa-home ended (unsub) before it was answered' });
    // a sub of another home, and of the same one again, are answered as usual
    expect(await app.request({ op: 'sub', home: 'sa-other' })).toMatchObject({ op: 'ok', result: { home: 'sa-other' } });
    expect(await app.request({ op: 'sub', home: 'sa-home' })).toMatchObject({ op: 'ok', result: { home: 'sa-home' } });
    app.ws.close();
  });

  it('is answered forbidden when the home is taken from the token meanwhile, after its end', async () => {
    const app = await socket('sa-bob', ['sa-home', 'sa-other']);
    hold();
    app.send({ op: 'sub', id: 101, home: 'sa-home' });
    await reached;
    expect((await admin('POST', '/v1/admin/tokens/revoke', { home: 'sa-home' })).status).toBe(200);
    expect(await app.next((m) => m.op === 'end')).toMatchObject({ home: 'sa-home', code: 'forbidden' });
    release();
    expect(await app.next((m) => m.id === 101)).toMatchObject({ op: 'err', id: 101, code: 'forbidden' });
    expect(await app.request({ op: 'sub', home: 'sa-other' })).toMatchObject({ op: 'ok' });
    app.ws.close();
  });
});
