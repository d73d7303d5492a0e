/**
 * `PUT …/desired` answers the limits of PROTOCOL.md §1 as limits (`422 limit_exceeded`, naming the
 * limit), whether one change passes them or the device would, and a malformed body as 400.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';
import { api } from '../helpers/server-process.js';

const ADMIN = 'desired-limits-admin-token-0123456789';

let node: InProcessNode;

beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'desired-limits-jwt-secret-0123456789abcdef');
  expect((await api(node.http, 'POST', '/v1/admin/hubs', ADMIN, { hubId: 'dlh-1', homeId: 'dlh-home' })).status).toBe(201);
});

afterAll(async () => {
  await node?.server.close();
});

const put = (deviceId: string, desired: unknown) => api(node.http, 'PUT', `/v1/hubs/dlh-1/devices/${deviceId}/desired`, ADMIN, { desired });
const attrs = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`a${i}`, i]));

describe('desired state over HTTP: limits are 422 limit_exceeded', () => {
  it('a string of 1025 characters, naming the attribute and the limit; 1024 is stored', async () => {
    expect((await put('text', { s: 'x'.repeat(1024) })).status).toBe(200);
    const res = await put('text', { s: 'x'.repeat(1025) });
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({ code: 'limit_exceeded', field: 'desired.s' });
    expect(res.body.message).toContain('1024 characters');
  });

  it('65 attributes in one change, as a 65th in a second change is; 64 are stored', async () => {
    const many = await put('many', attrs(65));
    expect(many.status).toBe(422);
    expect(many.body).toMatchObject({ code: 'limit_exceeded', field: 'desired' });
    expect(many.body.message).toContain('more than 64 attributes');
    // nils count too: the change is refused though the device would hold 64
    expect(await put('many', { ...attrs(64), gone: null })).toMatchObject({ status: 422, body: { code: 'limit_exceeded', field: 'desired' } });
    expect((await put('grown', attrs(64))).status).toBe(200);
    expect(await put('grown', { z: 1 })).toMatchObject({ status: 422, body: { code: 'limit_exceeded', field: 'desired' } });
    // nothing of a refused change is stored
    expect(Object.keys((await node.ports.shadows.load('dlh-1')).many?.desired ?? {})).toEqual([]);
  });

  it('a malformed body is still 400 invalid_field', async () => {
    expect(await put('bad', { a: [1] })).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'desired.a' } });
    expect(await put('bad', { ['k'.repeat(65)]: 1 })).toMatchObject({ status: 400, body: { code: 'invalid_field' } });
  });

  it('an empty change is 400 invalid_field, as a rule\'s is, and makes no device (review "desired" F5)', async () => {
    expect(await put('none', {})).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'desired', message: expect.stringContaining('at least one attribute') } });
    expect((await node.ports.shadows.load('dlh-1')).none).toBeUndefined();
  });
});

describe('JSON bodies with \\u escapes', () => {
  // raw bodies: JSON.stringify would write the lone surrogate as the escape it is
  const raw = (deviceId: string, body: string) => api(node.http, 'PUT', `/v1/hubs/dlh-1/devices/${deviceId}/desired`, ADMIN, body);

  it('a lone surrogate, in a value or a key, is refused 400 invalid_field naming where; a pair (an emoji) is stored', async () => {
    expect(await raw('u', '{"desired":{"x":"\\ud800"}}')).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'desired.x' } });
    expect(await raw('u', '{"desired":{"x":"a\\udc00b"}}')).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'desired.x' } });
    expect(await raw('u', '{"desired":{"\\ud800":1}}')).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'desired' } });
    const pair = await raw('u', '{"desired":{"x":"\\ud83d\\ude00 \\u00e9"}}');
    expect(pair.status).toBe(200);
    expect(JSON.stringify(pair.body)).toContain('"x":"😀 é"');
  });
});
