/**
 * `GET /v1/openapi.json` needs no token, and making the document costs about 10 ms of the event
 * loop: the node makes it once and serves the same bytes (again at most once a minute), so a
 * flood of unauthenticated requests cannot hold the loop. The document's maker is counted here.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';

const made = vi.hoisted(() => ({ count: 0 }));
vi.mock('../../src/api/openapi.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/api/openapi.js')>();
  return {
    ...original,
    openApiDocument: (...args: Parameters<typeof original.openApiDocument>) => {
      made.count++;
      return original.openApiDocument(...args);
    },
  };
});

let node: InProcessNode;
beforeAll(async () => {
  node = await startInProcessNode('openapi-cached-admin-token-0123456789', 'openapi-cached-jwt-secret-0123456789abcdef');
});
afterAll(async () => {
  await node?.server.close();
});

describe('the served OpenAPI document', () => {
  it('is made once for many requests, and every answer is the same document with every route', async () => {
    const before = made.count;
    const answers = await Promise.all(Array.from({ length: 20 }, () => fetch(`${node.http}/v1/openapi.json`)));
    const texts = await Promise.all(answers.map((r) => r.text()));
    expect(answers.map((r) => [r.status, r.headers.get('content-type')])).toEqual(answers.map(() => [200, 'application/json']));
    expect(new Set(texts).size).toBe(1);
    const doc = JSON.parse(texts[0]!) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toMatch(/^3\./);
    // routes mounted by every module, the home routes among them
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/homes/{homeId}/export', '/v1/admin/tokens']));
    expect(made.count - before).toBe(1);
  });
});
