/**
 * The public API against its document and RFC 9110, on a node started in-process on the memory
 * ports (review "apiconform"): what answers outside the route table say, HEAD of the export,
 * the 401 challenge, how query parameters are read, and the revocation list's pages.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';
import { api } from '../helpers/server-process.js';
import { revocationPage, revocationsQuery } from '../../src/api/revocation-list.js';
import type { TokenRevocation } from '../../proto/subjects.js';

const ADMIN = 'conform-admin-token-0123456789';

let node: InProcessNode;
let http: string;

beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'conform-jwt-secret-0123456789abcdef');
  ({ http } = node);
});

afterAll(async () => {
  await node?.server.close();
});

const admin = (method: string, path: string, body?: unknown) => api(http, method, path, ADMIN, body);

/** A raw answer: status, headers and body text. */
async function raw(method: string, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${http}${path}`, { method, headers });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** The audit entries of an action, once `expected` are there (the trail is written after the answer). */
async function auditEntries(action: string, expected: number): Promise<Array<{ requestId?: string }>> {
  for (let i = 0; i < 100; i++) {
    const { body } = await admin('GET', `/v1/admin/audit?action=${action}`);
    if (body.entries.length >= expected) return body.entries;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`fewer than ${expected} ${action} entries`);
}

describe('HEAD of a home’s export', () => {
  it('is answered 405 with Allow: GET: no export built, none recorded in the audit trail, none counted against the home', async () => {
    const head = await raw('HEAD', '/v1/homes/conform-home/export', { authorization: `Bearer ${ADMIN}`, 'x-request-id': 'head-export-1' });
    expect(head.status).toBe(405);
    expect(head.headers.get('allow')).toBe('GET');
    expect(head.headers.get('x-request-id')).toBe('head-export-1');
    expect(head.text).toBe('');
    const get = await raw('GET', '/v1/homes/conform-home/export', { authorization: `Bearer ${ADMIN}`, 'x-request-id': 'get-export-1' });
    expect(get.status).toBe(200);
    // the GET's entry is there, and it is the only one: the HEAD recorded nothing
    const entries = await auditEntries('home.export', 1);
    expect(entries.map((e) => e.requestId)).toEqual(['get-export-1']);
  });

  it('every other GET route still answers HEAD', async () => {
    const head = await raw('HEAD', '/v1/homes/conform-home/hubs', { authorization: `Bearer ${ADMIN}` });
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
  });
});

describe('answers outside the route table', () => {
  it('a path the table has under other methods: 405 method_not_allowed with Allow, and the caller’s x-request-id', async () => {
    const put = await raw('PUT', '/v1/hubs/hub-7', { 'x-request-id': 'probe-405' });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET, HEAD');
    expect(put.headers.get('x-request-id')).toBe('probe-405');
    expect(JSON.parse(put.text)).toMatchObject({ ok: false, code: 'method_not_allowed', num: 109, temporary: false });
    // the methods of every pattern the path matches: /v1/admin/hubs/{hubId} has four
    const post = await raw('POST', '/v1/admin/hubs/hub-7');
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')?.split(', ').sort()).toEqual(['DELETE', 'GET', 'HEAD', 'PATCH']);
    expect((await raw('OPTIONS', '/v1/openapi.json')).headers.get('allow')).toBe('GET, HEAD');
    const get = await raw('GET', '/v1/hubs/hub-7/devices/lamp-1/commands');
    expect([get.status, get.headers.get('allow')]).toEqual([405, 'POST']);
  });

  it('an unknown path is 404 not_found and another protocol version 400, each with an x-request-id: the caller’s, else one made', async () => {
    const slash = await raw('GET', '/v1/hubs/hub-7/', { 'x-request-id': 'probe-404' });
    expect([slash.status, slash.headers.get('x-request-id'), slash.headers.get('allow')]).toEqual([404, 'probe-404', null]);
    expect(JSON.parse(slash.text)).toMatchObject({ code: 'not_found' });
    const version = await raw('GET', '/hub/v2', { 'x-request-id': 'probe-400' });
    expect([version.status, version.headers.get('x-request-id')]).toEqual([400, 'probe-400']);
    const made = await raw('GET', '/nothing-here', { 'x-request-id': 'not valid!' });
    expect(made.status).toBe(404);
    expect(made.headers.get('x-request-id')).toMatch(/^[A-Za-z0-9._:-]+$/);
    expect(made.headers.get('x-request-id')).not.toBe('not valid!');
  });
});

describe('401', () => {
  it('names the scheme the API takes: WWW-Authenticate: Bearer (RFC 9110 §11.6.1)', async () => {
    for (const auth of [{}, { authorization: 'Basic YTpi' }] as Array<Record<string, string>>) {
      const res = await raw('GET', '/v1/homes/conform-home/hubs', auth);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
    }
    // other answers carry none
    expect((await raw('GET', '/v1/homes/conform-home/hubs', { authorization: `Bearer ${ADMIN}` })).headers.get('www-authenticate')).toBeNull();
  });
});

describe('query parameters', () => {
  const routes = ['/v1/admin/hubs', '/v1/admin/tokens/revocations', '/v1/admin/audit', '/v1/homes/conform-home/audit'];

  it('an integer is plain decimal digits: 0x10, 1e2, " 5", 1.0, +5 and -1 are refused 400 naming it', async () => {
    for (const route of routes) {
      for (const limit of ['0x10', '1e2', '%205', '5%20', '1.0', '%2B5', '-1', '0', '', '1001']) {
        const res = await admin('GET', `${route}?limit=${limit}`);
        expect([res.status, res.body.code, res.body.field], `${route}?limit=${limit}`).toEqual([400, 'invalid_field', 'limit']);
      }
      expect((await admin('GET', `${route}?limit=5`)).status, route).toBe(200);
    }
  });

  it('one given twice is refused 400 naming it, on every route that reads the query', async () => {
    const repeated = ['limit=5&limit=0', 'limit=0&limit=5', 'limit=5&limit=5'];
    for (const route of routes) {
      for (const q of repeated) expect((await admin('GET', `${route}?${q}`)).body, `${route}?${q}`).toMatchObject({ code: 'invalid_field', field: 'limit', message: 'limit: must be given once' });
    }
    for (const q of ['after=a&after=b', 'home=h1&home=h2', 'online=true&online=false']) expect((await admin('GET', `/v1/admin/hubs?${q}`)).body, q).toMatchObject({ code: 'invalid_field', field: q.split('=')[0] });
    for (const q of ['sub=a&sub=b', 'jti=a&jti=b', 'home=h1&home=h1']) expect((await admin('GET', `/v1/admin/tokens/revocations?${q}`)).body, q).toMatchObject({ code: 'invalid_field', field: q.split('=')[0] });
    expect((await admin('GET', '/v1/homes/conform-home/hubs?after=a&after=b')).body).toMatchObject({ code: 'invalid_field', field: 'after' });
  });
});

describe('the revocation list', () => {
  it('pages with after/next: following next lists every revocation in force once, in order, then null', async () => {
    for (let i = 0; i < 7; i++) expect((await admin('POST', '/v1/admin/tokens/revoke', { sub: `conform-user-${i}` })).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await admin('POST', '/v1/admin/tokens/revoke', { jti: `conform-jti-${i}` })).status).toBe(200);
    const whole = (await admin('GET', '/v1/admin/tokens/revocations?limit=1000')).body as { revocations: unknown[]; total: number; next: string | null };
    expect(whole.total).toBeGreaterThanOrEqual(10);
    expect(whole.next).toBeNull();
    const seen: unknown[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 20; pages++) {
      const { status, body } = await admin('GET', `/v1/admin/tokens/revocations?limit=3${after === null ? '' : `&after=${after}`}`);
      expect(status).toBe(200);
      expect(body.total).toBe(whole.total);
      seen.push(...body.revocations);
      after = body.next;
      if (after === null) break;
      expect(body.revocations).toHaveLength(3);
    }
    expect(seen).toEqual(whole.revocations);
    // with a filter too
    const one = await admin('GET', '/v1/admin/tokens/revocations?sub=conform-user-3&limit=1');
    expect(one.body).toMatchObject({ revocations: [{ sub: 'conform-user-3' }], total: 1, next: null });
    for (const bad of ['x', 'eyJhIjoxfQ', '%5B1%2C%22a%22%5D', 'a'.repeat(600)]) expect((await admin('GET', `/v1/admin/tokens/revocations?after=${bad}`)).body, bad).toMatchObject({ code: 'invalid_field', field: 'after' });
  });
});

describe('revocation pages', () => {
  it('cut a run of revocations kept equally long by what they revoke: each listed once, whatever the page size', () => {
    const all: TokenRevocation[] = [];
    for (let i = 0; i < 40; i++) all.push(i % 2 === 0 ? { jti: `j${i}`, exp: 1_000 + (i % 3) } : { sub: `u${i}`, before: 500 + (i % 2), exp: 1_000 + (i % 3) });
    all.push({ home: 'h1', before: 500, exp: 1_001 }, { home: 'h1', before: 501, exp: 1_001 });
    const whole = revocationPage(all, revocationsQuery(new URLSearchParams('limit=1000')));
    expect(whole.revocations.map((r) => Date.parse(r.until))).toEqual([...whole.revocations.map((r) => Date.parse(r.until))].sort((a, b) => b - a));
    for (const limit of [1, 2, 7, 13, 41, 42]) {
      const seen: unknown[] = [];
      let after: string | null = null;
      do {
        const page = revocationPage(all, revocationsQuery(new URLSearchParams(`limit=${limit}${after === null ? '' : `&after=${after}`}`)));
        seen.push(...page.revocations);
        after = page.next;
      } while (after !== null);
      expect(seen, `limit ${limit}`).toEqual(whole.revocations);
    }
    expect(whole.revocations).toHaveLength(42);
  });
});
