/**
 * bull-board on the admin uWS app: the token gate (bearer, `?token=` → cookie, refusals), the
 * dashboard's own API answering through the uWS ↔ Hono bridge with the push queue's real jobs, its
 * security headers on every answer, and its page rendering in real headless Chromium under its CSP
 * (screenshot in test/artifacts/; skipped where /usr/bin/chromium is absent).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdminApp } from '../../src/admin/admin-server.js';
import { mountBullBoard } from '../../src/admin/bull-board.js';
import { AdminTokens } from '../../src/auth/admin-tokens.js';
import { GuessLimit, guessWatch } from '../../src/auth/guess-limit.js';
import { NodeMetrics } from '../../src/admin/metrics.js';
import { RedisKeys } from '../../src/ports/redis.js';
import { BullMqPushQueue } from '../../src/ports/push-queue/push-queue-bullmq.js';
import { createLogger } from '../../src/log/logger.js';
import { loadUws, type us_listen_socket } from '../../src/transport/uws.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';

const TOKEN = 'board-test-admin-token-0123456789';
/** What a browser sends for an address typed in its bar: the only `?token=` the board takes. */
const TYPED = { 'sec-fetch-site': 'none' };
const NEW = 'board-test-rotated-token-0123456789';
const binding = loadUws({ requireNative: false });
let redis: Backend;
let push: BullMqPushQueue;
let socket: us_listen_socket;
let base: string;
let admin: ReturnType<typeof createAdminApp>;

beforeAll(async () => {
  redis = await startRedis();
  const log = createLogger('silent');
  push = await BullMqPushQueue.connect(redis.url, { name: 'test-board', log, keys: new RedisKeys(uniquePrefix()), attempts: 1, sender: async (d) => {
    if (d.notification.title === 'fails') throw new Error('push service said no');
  } });
  // the admin app as the server builds it (its catch-all 404 is registered first)
  admin = createAdminApp(binding.uws, { metrics: new NodeMetrics(() => 0), log, readiness: () => ({ ready: true, detail: {} }) });
  mountBullBoard(admin, { queues: [push.queue], adminToken: new AdminTokens(TOKEN), log });
  // the board of a node in the second roll of a rotation: NEW is its token, TOKEN accepted beside it
  mountBullBoard(admin, { queues: [push.queue], adminToken: new AdminTokens(NEW, [TOKEN]), log, basePath: '/rotated' });
  socket = await new Promise<us_listen_socket>((resolve, reject) => admin.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('no listen')))));
  base = `http://127.0.0.1:${binding.uws.us_socket_local_port(socket as never)}`;
});

afterAll(async () => {
  if (socket) binding.uws.us_listen_socket_close(socket);
  await push?.close();
  await redis?.stop();
});

const bearer = { authorization: `Bearer ${TOKEN}` };

describe('bull-board on the admin port', () => {
  it('refuses requests without the admin token, or with a wrong one', async () => {
    for (const path of ['/queues', '/queues/api/queues', '/queues/static/favicon.ico']) {
      const res = await fetch(`${base}${path}`);
      expect(res.status, path).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
    }
    expect((await fetch(`${base}/queues/api/queues`, { headers: { authorization: 'Bearer wrong-token-wrong-token-000' } })).status).toBe(401);
    expect((await fetch(`${base}/queues?token=wrong`, { redirect: 'manual', headers: TYPED })).status).toBe(401);
    expect((await fetch(`${base}/queues/api/queues`, { headers: { cookie: 'tier_board=99999999999.forged' } })).status).toBe(401);
    // the admin port's own routes are untouched
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });

  it('with the bearer token: the UI page and the queue with its jobs', async () => {
    await push.enqueue({ homeId: 'home1', title: 'Water leak', body: 'bath', dedupKey: 'k-ok' });
    await push.enqueue({ homeId: 'home1', title: 'fails', body: 'x', dedupKey: 'k-fail' });
    await push.drain();
    const page = await fetch(`${base}/queues`, { headers: bearer });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('<base href="/queues/" />');
    const api = await fetch(`${base}/queues/api/queues`, { headers: bearer });
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: Array<{ name: string; counts: Record<string, number> }> };
    expect(body.queues.map((q) => q.name)).toEqual(['push']);
    expect(body.queues[0]!.counts).toMatchObject({ completed: 1, failed: 1 });
  });

  it('?token= swaps the token for a session cookie and a redirect without it; the cookie then works', async () => {
    const res = await fetch(`${base}/queues?token=${TOKEN}&x=1`, { redirect: 'manual', headers: TYPED });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/queues?x=1');
    const setCookie = res.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^tier_board=\d+\.[\w-]+; Path=\/queues; Max-Age=43200; HttpOnly; SameSite=Strict$/);
    expect(setCookie).not.toContain(TOKEN);
    const cookie = setCookie.split(';')[0]!;
    expect((await fetch(`${base}/queues/api/queues`, { headers: { cookie } })).status).toBe(200);
    // a static asset of the UI through the bridge
    const html = await (await fetch(`${base}/queues`, { headers: { cookie } })).text();
    const asset = /src="(static\/js\/main\.[^"]+\.js)"/.exec(html)?.[1];
    expect(asset).toBeDefined();
    const js = await fetch(`${base}/queues/${asset}`, { headers: { cookie } });
    expect(js.status).toBe(200);
    expect((await js.arrayBuffer()).byteLength).toBeGreaterThan(1_000);
  });

  it('in a rotation takes the accepted token and the sessions signed in under it; a node without the new token refuses both of it', async () => {
    const session = async (path: string, token: string) => ((await fetch(`${base}${path}?token=${token}`, { redirect: 'manual', headers: TYPED })).headers.get('set-cookie') ?? '').split(';')[0]!;
    const status = async (path: string, headers: Record<string, string>) => (await fetch(`${base}${path}/api/queues`, { headers })).status;
    const old = await session('/queues', TOKEN);
    const rotated = await session('/rotated', TOKEN);
    expect(old).toMatch(/^tier_board=/);
    expect(await status('/rotated', { cookie: old })).toBe(200);
    expect(await status('/rotated', { cookie: rotated })).toBe(200);
    expect(await status('/rotated', { authorization: `Bearer ${TOKEN}` })).toBe(200);
    expect(await status('/rotated', { authorization: `Bearer ${NEW}` })).toBe(200);
    // what the rotated node signs is made under NEW alone
    expect(await status('/queues', { cookie: rotated })).toBe(401);
    expect(await status('/queues', { authorization: `Bearer ${NEW}` })).toBe(401);
  });

  it('a browser is shown a sign-in form; the token posted to /queues/login (in no URL) swaps for the cookie', async () => {
    const page = await fetch(`${base}/queues`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(401);
    expect(page.headers.get('content-type')).toContain('text/html');
    const form = await page.text();
    expect(form).toContain('<form method="post" action="/queues/login">');
    expect(form).toContain('type="password"');
    // curl and scripts still get the plain answer
    expect(await (await fetch(`${base}/queues`)).text()).toBe('admin token required: sign in at /queues in a browser, or send Authorization: Bearer <ADMIN_TOKEN>\n');
    const post = (body: string) => fetch(`${base}/queues/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
    const wrong = await post('token=wrong-token');
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).toContain('That is not the admin token.');
    expect((await post(`token=${'x'.repeat(5_000)}`)).status).toBe(413);
    const ok = await post(`token=${encodeURIComponent(TOKEN)}`);
    expect(ok.status).toBe(303);
    expect(ok.headers.get('location')).toBe('/queues');
    const cookie = (ok.headers.get('set-cookie') ?? '').split(';')[0]!;
    expect(cookie).toMatch(/^tier_board=\d+\./);
    const api = await fetch(`${base}/queues/api/queues`, { headers: { cookie } });
    expect(api.status).toBe(200);
    // the queue's jobs hold a home's notifications: no cache keeps them
    expect(api.headers.get('cache-control')).toBe('no-store');
  });

  it('/queues/logout shows a sign-out button; its POST clears the cookie', async () => {
    const page = await fetch(`${base}/queues/logout`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<form method="post" action="/queues/logout">');
    const out = await fetch(`${base}/queues/logout`, { method: 'POST', redirect: 'manual' });
    expect(out.status).toBe(303);
    expect(out.headers.get('location')).toBe('/queues');
    expect(out.headers.get('set-cookie')).toBe('tier_board=; Path=/queues; Max-Age=0; HttpOnly; SameSite=Strict');
  });

  it('wrong tokens past the limit lock the address out of every way in, the right token too, with 429 and Retry-After', async () => {
    const counted: string[] = [];
    mountBullBoard(admin, { queues: [push.queue], adminToken: new AdminTokens(TOKEN), log: createLogger('silent'), basePath: '/limited', guesses: guessWatch(createLogger('silent'), (r) => counted.push(r), new GuessLimit({ limit: 2 })) });
    const login = (token: string) => fetch(`${base}/limited/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${encodeURIComponent(token)}` });
    expect((await login('wrong-1')).status).toBe(401);
    expect((await fetch(`${base}/limited?token=wrong-2`, { redirect: 'manual', headers: TYPED })).status).toBe(401);
    const locked = await login(TOKEN);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await locked.text()).toContain('Too many wrong tokens from this address');
    expect((await fetch(`${base}/limited/api/queues`, { headers: bearer })).status).toBe(429);
    expect((await fetch(`${base}/limited?token=${TOKEN}`, { redirect: 'manual', headers: TYPED })).status).toBe(429);
    expect(counted).toEqual(['token', 'token', 'locked', 'locked', 'locked']);
    // the board without a limit is not affected
    expect((await fetch(`${base}/queues/api/queues`, { headers: bearer })).status).toBe(200);
  });

  it("a page of another site cannot spend the address's wrong guesses, nor sign the operator out (review \"web\")", async () => {
    const counted: string[] = [];
    mountBullBoard(admin, { queues: [push.queue], adminToken: new AdminTokens(TOKEN), log: createLogger('silent'), basePath: '/sites', guesses: guessWatch(createLogger('silent'), (r) => counted.push(r), new GuessLimit({ limit: 2 })) });
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    for (const site of ['cross-site', 'same-site']) {
      const page = { 'sec-fetch-site': site };
      for (let i = 0; i < 3; i++) {
        expect((await fetch(`${base}/sites?token=wrong-${i}`, { redirect: 'manual', headers: page })).status).toBe(403);
        expect((await fetch(`${base}/sites/login`, { method: 'POST', redirect: 'manual', headers: { ...form, ...page }, body: `token=wrong-${i}` })).status).toBe(403);
      }
      const out = await fetch(`${base}/sites/logout`, { method: 'POST', redirect: 'manual', headers: page });
      expect(out.status).toBe(403);
      expect(out.headers.get('set-cookie')).toBeNull();
    }
    // an <img> of another page over plain HTTP: no fetch metadata, no Origin, no Referer (review "diff29")
    expect((await fetch(`${base}/sites?token=wrong`, { redirect: 'manual' })).status).toBe(401);
    expect((await fetch(`${base}/sites?token=${TOKEN}`, { redirect: 'manual' })).status).toBe(401);
    // a browser without fetch metadata: an Origin of another host
    expect((await fetch(`${base}/sites/login`, { method: 'POST', redirect: 'manual', headers: { ...form, origin: 'http://evil.example' }, body: 'token=wrong' })).status).toBe(403);
    expect(counted).toEqual([]);
    // the operator's own: typed in the address bar, the board's own form (Chromium's Origin: null)
    expect((await fetch(`${base}/sites?token=${TOKEN}`, { redirect: 'manual', headers: { 'sec-fetch-site': 'none' } })).status).toBe(303);
    expect((await fetch(`${base}/sites/login`, { method: 'POST', redirect: 'manual', headers: { ...form, origin: 'null', 'sec-fetch-site': 'same-origin' }, body: `token=${TOKEN}` })).status).toBe(303);
    expect((await fetch(`${base}/sites/logout`, { method: 'POST', redirect: 'manual', headers: { origin: 'null', 'sec-fetch-site': 'same-origin' } })).status).toBe(303);
  });

  it('an action from another origin is refused; from the dashboard itself it runs', async () => {
    const retry = `${base}/queues/api/queues/push/retry/failed`;
    const foreign = await fetch(retry, { method: 'PUT', headers: { ...bearer, origin: 'http://evil.example' } });
    expect(foreign.status).toBe(403);
    expect((await push.stats()).failed).toBe(1);
    const own = await fetch(retry, { method: 'PUT', headers: { ...bearer, origin: base } });
    expect(own.status).toBe(200);
    await push.drain();
    // the retried job failed once more (attempts: 1): the action reached BullMQ
    expect((await push.stats()).failed).toBe(2);
  });

  it('every answer says nosniff and carries the dashboard\'s CSP: scripts from itself only, no framing', async () => {
    const html = await (await fetch(`${base}/queues`, { headers: bearer })).text();
    const asset = /src="(static\/js\/main\.[^"]+\.js)"/.exec(html)?.[1];
    const answers: Array<[string, RequestInit, number]> = [
      ['/queues', {}, 401],
      [`/queues?token=${TOKEN}`, { redirect: 'manual', headers: TYPED }, 303],
      ['/queues', { headers: bearer }, 200],
      [`/queues/${asset}`, { headers: bearer }, 200],
      ['/queues/api/queues', { headers: bearer }, 200],
      ['/queues/api/queues/push/retry/failed', { method: 'PUT', headers: { ...bearer, origin: 'http://evil.example' } }, 403],
    ];
    for (const [path, init, want] of answers) {
      const res = await fetch(`${base}${path}`, init);
      await res.arrayBuffer();
      expect(res.status, path).toBe(want);
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
      const csp = (res.headers.get('content-security-policy') ?? '').split(/;\s*/);
      for (const d of ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'self'"]) expect(csp, path).toContain(d);
    }
  });

  const CHROMIUM = '/usr/bin/chromium';
  it.skipIf(!existsSync(CHROMIUM))('the dashboard renders its queue in headless Chromium under that CSP', async () => {
    const artifacts = new URL('../artifacts/', import.meta.url);
    mkdirSync(artifacts, { recursive: true });
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      page.setDefaultTimeout(15_000);
      const problems: string[] = [];
      page.on('pageerror', (err) => problems.push(err.message));
      page.on('console', (msg) => {
        if (msg.type() === 'error') problems.push(msg.text());
      });
      const violations: string[] = [];
      await page.exposeFunction('reportViolation', (v: string) => violations.push(v));
      await page.addInitScript(() => {
        document.addEventListener('securitypolicyviolation', (e) => (window as unknown as { reportViolation(v: string): void }).reportViolation(`${e.violatedDirective} ${e.blockedURI}`));
      });
      // signs in through the form: the token is in no URL of the browser's history
      await page.goto(`${base}/queues`);
      await page.screenshot({ path: new URL('bull-board-sign-in.png', artifacts).pathname, fullPage: true });
      await page.fill('#token', TOKEN);
      await page.click('button[type=submit]');
      await page.waitForURL(/\/queues$/);
      // the sign-in page itself is an answer 401 (Chromium logs it), and asks for nothing else
      const signingIn = problems.splice(0).filter((p) => !p.includes('fonts.googleapis.com'));
      expect(signingIn).toEqual(['Failed to load resource: the server responded with a status of 401 (Unauthorized)']);
      // the overview lists the push queue with its counts: the scripts ran and called the API
      await page.getByText('push', { exact: true }).first().waitFor();
      await page.screenshot({ path: new URL('bull-board-overview.png', artifacts).pathname, fullPage: true });
      await page.getByText('push', { exact: true }).first().click();
      await page.waitForURL(/\/queues\/queue\/push/);
      await page.getByText(/Water leak|fails/).first().waitFor();
      await page.screenshot({ path: new URL('bull-board-queue.png', artifacts).pathname, fullPage: true });
      // the one thing refused: the page's Google Fonts stylesheet (an admin page calls nowhere else)
      const others = (list: string[]) => list.filter((v) => !v.includes('fonts.googleapis.com'));
      expect(others(violations)).toEqual([]);
      expect(others(problems)).toEqual([]);
    } finally {
      await browser.close();
    }
  });

  /** An IPv4 address of this machine other than loopback: over plain HTTP there, browsers send no fetch metadata. */
  const outside = Object.values(networkInterfaces())
    .flat()
    .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;
  it.skipIf(!existsSync(CHROMIUM) || outside === undefined)('its own sign-in and sign-out forms work over plain HTTP at an address other than loopback (review "diff29": they were refused as another site\'s)', async () => {
    const wide = await new Promise<us_listen_socket>((resolve, reject) => admin.listen('0.0.0.0', 0, (s) => (s ? resolve(s) : reject(new Error('no listen')))));
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(15_000);
      const at = `http://${outside}:${binding.uws.us_socket_local_port(wide as never)}`;
      await page.goto(`${at}/queues`);
      await page.fill('#token', TOKEN);
      const [signIn] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
      expect(signIn?.status()).toBe(200);
      expect((await page.context().cookies()).map((c) => c.name)).toContain('tier_board');
      await page.goto(`${at}/queues/logout`);
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
      expect((await page.context().cookies()).map((c) => c.name)).not.toContain('tier_board');
    } finally {
      await browser.close();
      binding.uws.us_listen_socket_close(wide);
    }
  });
});
