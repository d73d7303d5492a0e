/**
 * `GET /v1/hubs/{hubId}/shadow` with its home's read budget (read-budget.ts), on a node in this
 * process (memory ports): a large hub read in a loop is answered 429 with Retry-After once past it;
 * a 200 is the shadow's JSON as before the reply was written in the route. Written by review diff10.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';
import { api } from '../helpers/server-process.js';
import { emptyDevice } from '../../src/ports/shadow-store/shadow-store.js';

const ADMIN = 'access-admin-token-0123456789';
let node: InProcessNode;
beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'access-jwt-secret-0123456789abcdef');
});
afterAll(async () => {
  await node?.server.close();
});

describe('shadow reads paced per home', () => {
  it('answers 429 rate_limited with Retry-After once a home reads past 100 ms a second; its 200 the shadow as JSON', async () => {
    const { ports, http } = node;
    await ports.registry.create({ hubId: 'big-1', homeId: 'home-r', model: undefined, secret: 'secret-big-0123456789', enabled: true, createdAt: Date.now() });
    for (let d = 0; d < 512; d++) {
      const dev = emptyDevice();
      dev.reported = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`attribute-${i}`, `value-${d}-${i}-${'x'.repeat(20)}`]));
      dev.reportedVersion = 1;
      ports.shadows.writeReported('big-1', `device-${d}`, dev);
    }
    await ports.shadows.flush();
    const token = (await api(http, 'POST', '/v1/admin/tokens', ADMIN, { sub: 'u', homes: ['home-r'] })).body.token as string;
    const statuses: number[] = [];
    let first: Response;
    let firstText = '';
    let refused: Response | undefined;
    let refusedText = '';
    const read = async () => {
      const res = await fetch(`${http}/v1/hubs/big-1/shadow`, { headers: { authorization: `Bearer ${token}` } });
      return { res, text: await res.text() };
    };
    // the first alone; then eight at a time, so the reads outpace the budget's refill however slow
    // this process is between them (one at a time on a loaded machine, 200 reads never passed it)
    const one = await read();
    statuses.push(one.res.status);
    [first, firstText] = [one.res, one.text];
    for (let batch = 0; batch < 50 && refused === undefined; batch++) {
      for (const { res, text } of await Promise.all(Array.from({ length: 8 }, read))) {
        statuses.push(res.status);
        if (res.status === 429 && refused === undefined) (refused = res), (refusedText = text);
      }
    }
    expect(first.headers.get('content-type')).toBe('application/json');
    expect(JSON.parse(firstText)).toMatchObject({ hubId: 'big-1', homeId: 'home-r' });
    expect(firstText).toBe(JSON.stringify({ hubId: 'big-1', homeId: 'home-r', devices: await ports.shadows.load('big-1') }));
    expect(refused?.headers.get('retry-after')).toBe('1');
    expect(statuses[0]).toBe(200);
    expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
    expect(JSON.parse(refusedText)).toMatchObject({ ok: false, code: 'rate_limited' });
  }, 60_000);
});
