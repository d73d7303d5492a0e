/**
 * The API documentation page's routes (src/api/docs-page.ts) on a real uWS app with the API mounted
 * as the server mounts it: content types, caching (content-hashed assets, ETag revalidation), gzip,
 * HEAD, 404 for anything else under /docs, and every link of the API description served by the node.
 * The rendering itself is checked in Chromium by test/integration/docs-browser.test.ts.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOCS_CSP } from '../../src/api/docs-page.js';
import { mountApi } from '../../src/api/routes.js';
import { loadUws, type us_listen_socket } from '../../src/transport/uws.js';

const binding = loadUws({ requireNative: false });
const require = createRequire(import.meta.url);
const proto = (name: string) => readFileSync(new URL(`../../proto/${name}`, import.meta.url), 'utf8');
let socket: us_listen_socket;
let base = '';

beforeAll(async () => {
  const app = binding.uws.App();
  const log = { error() {}, warn() {}, info() {}, debug() {}, child: () => log } as never;
  mountApi(app, { auth: {} as never, bus: {} as never, registry: {} as never, directory: {} as never, shadows: {} as never, log, maxBodyBytes: 65_536, commandTimeoutMs: 10_000, commandTimeoutMaxMs: 60_000, table: [] });
  socket = await new Promise<us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('listen failed')))));
  base = `http://127.0.0.1:${binding.uws.us_socket_local_port(socket as never)}`;
});

afterAll(() => {
  if (socket) binding.uws.us_listen_socket_close(socket);
});

const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => fetch(`${base}${path}`, { method, headers });

/** The page's script and stylesheet paths, resolved against /docs as a browser would. */
async function assetPaths(): Promise<string[]> {
  const html = await (await get('/docs')).text();
  return [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((u) => !u.startsWith('data:') && !u.startsWith('v1/')).map((u) => new URL(u, `${base}/docs`).pathname);
}

describe('GET /docs', () => {
  it('answers the page with its CSP, revalidated by ETag', async () => {
    const res = await get('/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toBe(DOCS_CSP);
    expect(DOCS_CSP).toMatch(/script-src 'self'(;|$)/);
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const etag = res.headers.get('etag');
    expect(etag).toMatch(/^W\/"[\w-]{16}"$/);
    expect(await res.text()).toMatch(/<div id="swagger-ui">/);

    const again = await get('/docs', { 'if-none-match': etag! });
    expect(again.status).toBe(304);
    expect(again.headers.get('etag')).toBe(etag);
    expect(again.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await again.text()).toBe('');
    expect((await get('/docs', { 'if-none-match': etag!.slice(2) })).status, 'strong form of the same tag').toBe(304);
    expect((await get('/docs', { 'if-none-match': `"other", ${etag}` })).status, 'one of a list').toBe(304);
    expect((await get('/docs', { 'if-none-match': '"other"' })).status).toBe(200);
  });

  it('serves the renderer from swagger-ui-dist under content-hashed paths, cached for good, gzipped on request', async () => {
    const paths = await assetPaths();
    expect(paths).toHaveLength(3);
    const types: Record<string, string> = {};
    for (const path of paths) {
      expect(path).toMatch(/^\/docs\/assets\/[\w-]{16}\/[\w.-]+$/);
      const res = await get(path, { 'accept-encoding': 'identity' });
      expect(res.status, path).toBe(200);
      expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      types[path.split('/').pop()!] = res.headers.get('content-type')!;
    }
    expect(types).toEqual({ 'swagger-ui-bundle.js': 'text/javascript; charset=utf-8', 'swagger-ui.css': 'text/css; charset=utf-8', 'init.js': 'text/javascript; charset=utf-8' });

    const bundlePath = paths.find((p) => p.endsWith('/swagger-ui-bundle.js'))!;
    const plain = await (await get(bundlePath, { 'accept-encoding': 'identity' })).text();
    expect(plain).toBe(readFileSync(require.resolve('swagger-ui-dist/swagger-ui-bundle.js'), 'utf8'));
    const zipped = await get(bundlePath, { 'accept-encoding': 'gzip' });
    expect(zipped.headers.get('content-encoding')).toBe('gzip');
    expect(zipped.headers.get('vary')).toBe('accept-encoding');
    expect(Number(zipped.headers.get('content-length'))).toBeLessThan(plain.length / 2);
    expect(await zipped.text()).toBe(plain); // fetch decodes it

    const init = await (await get(paths.find((p) => p.endsWith('/init.js'))!)).text();
    expect(init).toMatch(/url: new URL\('v1\/openapi\.json'/);
    expect(init).toMatch(/validatorUrl: null/);
  });

  it('answers HEAD with the headers and length of GET and no body', async () => {
    for (const path of ['/docs', ...(await assetPaths())]) {
      const full = await get(path, { 'accept-encoding': 'identity' });
      const head = await get(path, { 'accept-encoding': 'identity' }, 'HEAD');
      expect(head.status, path).toBe(200);
      expect(head.headers.get('content-type')).toBe(full.headers.get('content-type'));
      expect(head.headers.get('etag')).toBe(full.headers.get('etag'));
      expect(Number(head.headers.get('content-length'))).toBe(Buffer.byteLength(await full.text()));
      expect(await head.text()).toBe('');
    }
  });

  it('answers 404 for an unknown asset, an old asset hash, another path under /docs and other methods', async () => {
    const bundlePath = (await assetPaths()).find((p) => p.endsWith('/swagger-ui-bundle.js'))!;
    for (const path of ['/docs/assets/AAAAAAAAAAAAAAAA/swagger-ui-bundle.js', bundlePath.replace('swagger-ui-bundle.js', 'swagger-ui-bundle.js.map'), '/docs/nope', '/docs/assets/', '/docs/']) {
      const res = await get(path);
      expect(res.status, path).toBe(404);
      expect(await res.json()).toMatchObject({ ok: false, code: 'not_found' });
    }
    for (const method of ['POST', 'PUT', 'DELETE']) expect((await get('/docs', {}, method)).status, method).toBe(404);
  });

  it('serves the protocol documents as text a browser shows', async () => {
    const md = await get('/docs/protocol.md');
    expect(md.headers.get('content-type')).toBe('text/markdown; charset=utf-8');
    expect(await md.text()).toBe(proto('PROTOCOL.md'));
    const yaml = await get('/docs/asyncapi.yaml');
    expect(yaml.headers.get('content-type')).toBe('text/yaml; charset=utf-8');
    expect(await yaml.text()).toBe(proto('asyncapi.yaml'));
  });

  it('serves every link of the API description, which names /hub/v1 and /app/v1', async () => {
    const doc = (await (await get('/v1/openapi.json')).json()) as { info: { description: string } };
    const text = doc.info.description;
    expect(text).toMatch(/`\/hub\/v1`/);
    expect(text).toMatch(/`\/app\/v1`/);
    const links = [...text.matchAll(/\]\(([^)]+)\)/g)].map((m) => m[1]!);
    expect(links).toEqual(expect.arrayContaining(['/docs/protocol.md', '/docs/asyncapi.yaml']));
    for (const link of new Set(links)) {
      expect(link, 'root-relative: the page of any node serves it').toMatch(/^\/[\w./-]+$/);
      expect((await get(link)).status, link).toBe(200);
    }
  });
});
