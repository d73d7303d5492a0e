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

/** A request whose body is these raw bytes (fetch would encode a string as UTF-8). */
async function rawBody(method: string, path: string, bytes: Buffer): Promise<{ status: number; body: any }> {
  const res = await fetch(`${node.http}${path}`, { method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: new Uint8Array(bytes) as unknown as BodyInit });
  return { status: res.status, body: await res.json() };
}

it('a body that is not UTF-8 is refused 400 invalid_field, where a body is optional too (it was stored as U+FFFD)', async () => {
  expect((await api(node.http, 'POST', '/v1/admin/hubs', ADMIN, { hubId: 'bl-utf8', homeId: 'bl-home' })).status).toBe(201);
  const bad = Buffer.from([...Buffer.from('{"label":"a'), 0xff, 0xc3, ...Buffer.from('b"}')]);
  expect(await rawBody('PUT', '/v1/hubs/bl-utf8/devices/d1/desired', bad)).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'body' } });
  expect((await api(node.http, 'GET', '/v1/hubs/bl-utf8/shadow', ADMIN)).body.devices).toEqual({});
  // the rotation's body may be left out: bytes that are not UTF-8 are no empty body (the secret is not rotated)
  const rotate = await rawBody('POST', '/v1/admin/hubs/bl-utf8/secret', Buffer.from([0x7b, 0xff, 0x7d]));
  expect(rotate).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'body' } });
  // a lone surrogate as the whole document is refused on an optional body too
  expect(await rawBody('POST', '/v1/admin/hubs/bl-utf8/secret', Buffer.from('"\\ud800"'))).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'body' } });
  // a UTF-8 body with a BOM and non-ASCII text is read
  const ok = await rawBody('PUT', '/v1/hubs/bl-utf8/devices/d1/desired', Buffer.from('\ufeff{"desired":{"label":"café 日本 🚪"}}'));
  expect(ok.status).toBe(200);
  expect((await api(node.http, 'GET', '/v1/hubs/bl-utf8/shadow', ADMIN)).body.devices.d1.desired).toEqual({ label: 'café 日本 🚪' });
});

it('a malformed escape in a query parameter is refused 400 naming it, as in a path (it was read as U+FFFD or as given)', async () => {
  for (const [query, field] of [['actor=%ED%A0%80', 'actor'], ['actor=%zz', 'actor'], ['limit=5&acto%E0r=x', 'acto%E0r'], ['homeId=a%', 'homeId']]) {
    const res = await api(node.http, 'GET', `/v1/admin/audit?${query}`, ADMIN);
    expect(res, query).toMatchObject({ status: 400, body: { code: 'invalid_field', field } });
  }
  // well-formed escapes, a + for a space and non-ASCII text still pass
  expect((await api(node.http, 'GET', `/v1/admin/audit?actor=${encodeURIComponent('café 🚪')}&action=rule.`, ADMIN)).status).toBe(200);
  expect((await api(node.http, 'GET', '/v1/admin/audit?actor=a+b', ADMIN)).status).toBe(200);
});

it('an integer JSON.parse would round is refused 400 naming it, in a desired change and a command; 1e400 is refused in params (review "msgpack")', async () => {
  expect((await api(node.http, 'POST', '/v1/admin/hubs', ADMIN, { hubId: 'bl-int', homeId: 'bl-home' })).status).toBe(201);
  const desired = await rawBody('PUT', '/v1/hubs/bl-int/devices/d1/desired', Buffer.from('{"desired":{"eui":5149013111111111111}}'));
  expect(desired).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'desired.eui', message: expect.stringMatching(/5149013111111111111 is beyond/) } });
  expect((await api(node.http, 'GET', '/v1/hubs/bl-int/shadow', ADMIN)).body.devices).toEqual({});
  const command = await rawBody('POST', '/v1/hubs/bl-int/devices/d1/commands', Buffer.from('{"method":"pair","params":{"node":18446744073709551615}}'));
  expect(command).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'params.node' } });
  const infinite = await rawBody('POST', '/v1/hubs/bl-int/devices/d1/commands', Buffer.from('{"method":"dim","params":{"level":1e400}}'));
  expect(infinite).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'params.level' } });
  // the largest exact one is taken (the hub is offline: refused for that, not for the number)
  const exact = await rawBody('PUT', '/v1/hubs/bl-int/devices/d1/desired', Buffer.from('{"desired":{"eui":9007199254740991}}'));
  expect(exact.status).toBe(200);
});
