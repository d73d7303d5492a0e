/**
 * The API document against a node process (as served, at serve time): every request example of
 * every operation sent to the route it illustrates gets a status the operation documents, and is
 * never refused for its body (a 400 `invalid_field`/`malformed_frame` would be an example the server
 * does not accept: `before: 2025-01-31…` of the revocation was one, always "within 30 days of now").
 * The query parameters the document declares are read by the node, and the 400 and 413 answers it
 * gives are documented where it gives them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

type Json = Record<string, any>;

describe('OpenAPI document against a node', () => {
  let node: ServerProcess;
  let doc: Json;
  const admin = (method: string, path: string, body?: unknown) => api(node.httpUrl, method, path, node.adminToken, body);

  beforeAll(async () => {
    node = await startServerProcess();
    doc = (await admin('GET', '/v1/openapi.json')).body as Json;
  });

  afterAll(async () => {
    if (node) expect(await node.stop()).toBe(0);
  });

  it('every request example gets a documented status and is never refused for its body', async () => {
    // the ids the examples and path parameters name: a rule and a scene made first stand for theirs
    const ids: Record<string, string> = { hubId: 'hub-7', homeId: 'home-42', deviceId: 'lamp-1' };
    const results: string[] = [];
    let sent = 0;
    // the world the examples describe: hub-7 of home-42 (its provisioning examples then answer 409, documented)
    expect((await admin('POST', '/v1/admin/hubs', { hubId: 'hub-7', homeId: 'home-42' })).status).toBe(201);
    // the move takes hub-7 out of home-42: last, after the rules and scenes that name it there
    const operations = Object.entries(doc.paths as Json)
      .flatMap(([path, methods]) => Object.entries(methods as Json).map(([method, op]) => ({ path, method, op: op as Json })))
      .sort((a, b) => Number(a.path.endsWith('/move')) - Number(b.path.endsWith('/move')));
    for (const { path, method, op } of operations) {
      const examples = op.requestBody?.content['application/json'].examples as Record<string, { value: unknown }> | undefined;
      if (!examples) continue;
      for (const [name, { value }] of Object.entries(examples)) {
        const url = path.replace(/\{(\w+)\}/g, (_, p: string) => ids[p] ?? (op.parameters as Json[]).find((x) => x.name === p)?.example);
        const res = await admin(method.toUpperCase(), url, value);
        sent++;
        if (res.status < 300 && /\/rules$/.test(path) && typeof res.body.rule?.id === 'string') ids.ruleId = res.body.rule.id;
        if (res.status < 300 && /\/scenes$/.test(path) && typeof res.body.scene?.id === 'string') ids.sceneId = res.body.scene.id;
        const documented = Object.hasOwn(op.responses, String(res.status));
        const bodyRefused = res.status === 400 && ['invalid_field', 'malformed_frame'].includes(res.body?.code);
        if (!documented || bodyRefused) results.push(`${method} ${path} ${name} ${JSON.stringify(value)} -> ${res.status} ${JSON.stringify(res.body)}`);
      }
    }
    expect(results).toEqual([]);
    expect(sent).toBeGreaterThan(20);
    expect(Object.keys(ids)).toEqual(expect.arrayContaining(['ruleId', 'sceneId']));
    // the regression: the revocation by sub and time is accepted (it was always 400)
    const revoke = doc.paths['/v1/admin/tokens/revoke'].post.requestBody.content['application/json'].examples as Record<string, { value: Json }>;
    expect(Object.values(revoke).some((e) => typeof e.value.before === 'string')).toBe(true);
  });

  it('declares the query of GET /v1/admin/hubs; a bad one answers a documented 400, a body over the cap a documented 413', async () => {
    const list = doc.paths['/v1/admin/hubs'].get;
    const declared = (list.parameters as Json[]).filter((p) => p.in === 'query').map((p) => p.name as string);
    expect(declared).toEqual(['limit', 'after', 'prefix', 'home', 'model', 'firmware', 'enabled', 'online', 'node']);
    // each declared one is read: a bad value of it is refused naming it
    const bad: Record<string, string> = { limit: '0', after: 'a b', prefix: 'a b', home: '__proto__', model: '', firmware: '', enabled: 'maybe', online: 'yes', node: '' };
    for (const name of declared) {
      const res = await admin('GET', `/v1/admin/hubs?${name}=${encodeURIComponent(bad[name]!)}`);
      expect(res.body, name).toMatchObject({ code: 'invalid_field', field: name });
      expect(list.responses['400'].content['application/json'].examples.invalid_field, name).toBeDefined();
    }
    expect((await admin('GET', '/v1/admin/hubs?home=__proto__')).body.message).toContain('__proto__, constructor or prototype');
    const big = await admin('POST', '/v1/admin/hubs', { hubId: 'big', homeId: 'h', x: 'a'.repeat(70_000) });
    expect(big.status).toBe(413);
    expect(doc.paths['/v1/admin/hubs'].post.responses['413'].content['application/json'].examples.frame_too_large).toBeDefined();
    const notJson = await admin('POST', '/v1/admin/hubs', '{"hubId":');
    expect(notJson.body).toMatchObject({ code: 'malformed_frame' });
    expect(doc.paths['/v1/admin/hubs'].post.responses['400'].content['application/json'].examples.malformed_frame).toBeDefined();
    // a retried provisioning: the documented 409 says what to do
    const again = await admin('POST', '/v1/admin/hubs', { hubId: 'hub-7', homeId: 'home-42' });
    expect(again.status).toBe(409);
    expect(doc.paths['/v1/admin/hubs'].post.responses['409'].content['application/json'].examples.already_exists.value.message).toContain('/secret');
  });
});
