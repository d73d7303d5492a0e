/**
 * The API's body limit (http.ts readBody: 65,536 bytes) and the percent-decoding guard of path ids
 * (http.ts decodeParam), on an in-process node: until a mutation review of 2026-12-06 only the
 * compiled node's integration tests held the second and nothing the first.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';
import { api } from '../helpers/server-process.js';

const ADMIN = 'body-limit-admin-token-0123456789';
let node: InProcessNode;
beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'body-limit-jwt-secret-0123456789abcdef');
});
afterAll(async () => {
  await node?.server.close();
});

it('a body one byte past 65,536 is refused 413 frame_too_large; one at the limit is read', async () => {
  const empty = JSON.stringify({ hubId: 'bl-1', homeId: 'bl-home', pad: '' }).length;
  const body = (total: number) => JSON.stringify({ hubId: 'bl-1', homeId: 'bl-home', pad: 'x'.repeat(total - empty) });
  expect(body(65_537).length).toBe(65_537);
  const over = await api(node.http, 'POST', '/v1/admin/hubs', ADMIN, body(65_537));
  expect(over).toMatchObject({ status: 413, body: { code: 'frame_too_large' } });
  // at the limit the body is read (and refused for its unknown field, not its size)
  expect((await api(node.http, 'POST', '/v1/admin/hubs', ADMIN, body(65_536))).status).not.toBe(413);
});

it('a malformed percent escape in a path id is refused 400, and the node goes on', async () => {
  for (const bad of ['%', '%zz', '%E0%A4%A', '%C0']) {
    const res = await api(node.http, 'GET', `/v1/hubs/${bad}/shadow`, ADMIN);
    expect(res.status, bad).toBe(400);
  }
  expect((await api(node.http, 'GET', '/v1/admin/hubs', ADMIN)).status).toBe(200);
});
