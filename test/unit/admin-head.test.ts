/**
 * HEAD as probes and load balancers send it: on the admin port every GET route answers it with
 * GET's status and length and no body (it answered 404); on the public port too, the console page
 * and the API documents. Read on a raw socket: a body after a HEAD answer is invisible to fetch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawHead } from '../../load/fuzz/raw-head.js';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';

const ADMIN = 'head-admin-token-0123456789';
let node: InProcessNode;
let adminPort: number;
let publicPort: number;

beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'head-jwt-secret-0123456789abcdef');
  adminPort = node.server.adminPort;
  publicPort = node.server.port;
});

afterAll(async () => {
  await node?.server.close();
});

/** GET's status and body length, then HEAD's answer and its content-length. */
async function both(port: number, path: string, headers: Record<string, string> = {}) {
  const get = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
  const length = Buffer.byteLength(await get.text());
  const raw = await rawHead('127.0.0.1', port, path, headers, 5_000);
  const head = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'HEAD', headers });
  return { get: { status: get.status, length, type: get.headers.get('content-type') }, raw, head: { status: head.status, length: Number(head.headers.get('content-length')), type: head.headers.get('content-type') } };
}

describe('HEAD on the admin port', () => {
  const auth = { authorization: `Bearer ${ADMIN}` };
  for (const [path, headers, status] of [
    ['/healthz', {}, 200],
    ['/readyz', {}, 200],
    ['/metrics', {}, 200],
    ['/debug/log-level', auth, 200],
    ['/debug/log-level', {}, 401],
    ['/nothing-here', {}, 404],
  ] as const) {
    it(`${path}${'authorization' in headers ? ' (admin token)' : ''}: as GET (${status}), without the body`, async () => {
      const r = await both(adminPort, path, headers);
      expect(r.get.status).toBe(status);
      expect(r.raw).toEqual({ status, text: '', headBody: false });
      // the length and type GET's answer has (a scrape between the two may change the metrics' length)
      if (path !== '/metrics') expect(r.head).toEqual({ status, length: r.get.length, type: r.get.type });
      else expect(r.head).toMatchObject({ status, type: r.get.type });
    });
  }
});

describe('HEAD on the public port', () => {
  for (const path of ['/', '/v1/openapi.json', '/nothing-here']) {
    it(`${path}: as GET, without the body`, async () => {
      const r = await both(publicPort, path);
      expect(r.raw).toEqual({ status: r.get.status, text: '', headBody: false });
      expect(r.head).toEqual({ status: r.get.status, length: r.get.length, type: r.get.type });
    });
  }
});
