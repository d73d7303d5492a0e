/**
 * A page of another site, in real headless Chromium, opening app sockets to a node with wrong admin
 * tokens, from its own script and from a sandboxed frame (whose Origin is `null`): before 2026-12-07
 * each was checked and counted against the operator's address, and a few locked the right admin
 * token out of both ports (reviews "web", "diff28"). Chromium's own upgrade headers (it sends an
 * Origin and no Sec-Fetch-Site on WebSocket upgrades) now have them refused unchecked: the operator's
 * token still works. The page is served from `localhost`, the node addressed as 127.0.0.1: two sites.
 * Screenshots in test/artifacts/. Skipped where /usr/bin/chromium is absent (.ci/run installs it).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = new URL('../artifacts/', import.meta.url);
const found = existsSync(CHROMIUM);
const SOCKETS = 6;

/** `n` app sockets with wrong admin tokens; `done()` once all have closed. */
const script = (node: string, n: number, done: string) =>
  `let left = ${n}; for (let i = 0; i < ${n}; i++) { const ws = new WebSocket('${node}/app/v1?token=not-the-admin-token-' + i); ws.onclose = () => { if (--left === 0) ${done}; }; }`;

/** The attacker's pages: sockets from the page itself, or from a sandboxed frame that tells its parent. */
function pages(node: string): (path: string) => string {
  return (path) =>
    path === '/sandbox'
      ? `<!doctype html><title>cats</title><p id=s>opening</p><script>addEventListener('message', () => { window.done = true; document.getElementById('s').textContent = 'all closed'; });</script>` +
        `<iframe sandbox="allow-scripts" srcdoc="<script>${script(node, SOCKETS, "parent.postMessage('done', '*')")}</script>"></iframe>`
      : `<!doctype html><title>cats</title><p id=s>opening</p><script>${script(node, SOCKETS, "(window.done = true, document.getElementById('s').textContent = 'all closed')")}</script>`;
}

describe.skipIf(!found)(`a page of another site against the admin token${found ? '' : ` (skipped: ${CHROMIUM} not found)`}`, () => {
  let server: ServerProcess;
  let site: Server;
  let browser: Browser;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    server = await startServerProcess({ TIER_ADMIN_TOKEN_GUESSES: '3' });
    const page = pages(server.wsUrl);
    site = createServer((req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(page(req.url ?? '/')));
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  });
  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => site?.close(r));
    if (server) expect(await server.stop()).toBe(0);
  });

  for (const [what, path] of [['its own script', '/'], ['a sandboxed frame', '/sandbox']] as const) {
    it(`sockets with wrong tokens from ${what}: the operator's right token is not locked out`, async () => {
      const tab = await browser.newPage();
      await tab.goto(`http://localhost:${(site.address() as AddressInfo).port}${path}`);
      await tab.waitForFunction(() => (window as unknown as { done?: boolean }).done === true, undefined, { timeout: 15_000 });
      await tab.screenshot({ path: new URL(`foreign-site${path === '/' ? '' : '-sandbox'}.png`, ARTIFACTS).pathname });
      await tab.close();
      const status = await fetch(`${server.httpUrl}/v1/admin/hubs`, { headers: { authorization: `Bearer ${server.adminToken}` } }).then((r) => r.status);
      expect(status).toBe(200);
      expect(server.logs.some((l) => l.msg === 'wrong admin token')).toBe(false);
    });
  }
});
