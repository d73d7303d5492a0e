/**
 * The demo console in real headless Chromium against a node process: it loads the client library
 * from /client.js, connects with a token, subscribes to a home, shows a simulated hub's event and a
 * command's result. Screenshots go to test/artifacts/. Skipped where /usr/bin/chromium is absent
 * (.ci/run installs it).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { SignJWT } from 'jose';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../../load/wire/hub-client.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = new URL('../artifacts/', import.meta.url);
const HOME = 'home-browser';
const found = existsSync(CHROMIUM);

describe.skipIf(!found)(`demo console in headless Chromium${found ? '' : ` (skipped: ${CHROMIUM} not found; .ci/run installs it with apt)`}`, () => {
  let server: ServerProcess;
  let browser: Browser;
  let page: Page;
  const hubs: HubClient[] = [];
  const pageErrors: string[] = [];
  let token = '';

  const shot = (name: string) => page.screenshot({ path: new URL(`console-${name}.png`, ARTIFACTS).pathname, fullPage: true });
  /** Waits until the element's text matches (the console writes everything as text). */
  const textOf = async (selector: string, pattern: RegExp) => {
    await page.waitForFunction(([sel, src]) => new RegExp(src!).test(document.querySelector(sel!)?.textContent ?? ''), [selector, pattern.source] as const);
    return (await page.textContent(selector)) ?? '';
  };

  async function provision(hubId: string): Promise<string> {
    const res = await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId, homeId: HOME });
    expect(res.status).toBe(201);
    return res.body.secret;
  }

  async function hubOnline(hubId: string): Promise<HubClient> {
    const hub = new HubClient({ url: server.wsUrl, hubId, secret: await provision(hubId) });
    hubs.push(hub);
    await hub.connect();
    return hub;
  }

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    server = await startServerProcess();
    token = await new SignJWT({ homes: [HOME] })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('dana')
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(server.jwtSecret));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      // Chromium logs each refused reconnect attempt: expected, not a page error
      if (msg.type() === 'error' && !/^WebSocket connection to .* failed/.test(msg.text())) pageErrors.push(msg.text());
    });
  });

  afterAll(async () => {
    await browser?.close();
    await Promise.allSettled(hubs.map((h) => h.terminate()));
    if (server) expect(await server.stop()).toBe(0);
  });

  it('connects with a token, shows a hub’s event and a command’s result, through /client.js', async () => {
    const bundle = await fetch(`${server.httpUrl}/client.js`);
    expect(bundle.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(await bundle.text()).toMatch(/HubtierClient/);

    // a #token= link prefills the fields, leaves the address bar, and does not connect by itself
    await page.goto(`${server.httpUrl}/#token=${token}&home=${HOME}`);
    expect(await page.inputValue('#token')).toBe(token);
    expect(await page.inputValue('#home')).toBe(HOME);
    expect(page.url()).toBe(`${server.httpUrl}/`);
    expect(await page.textContent('#status')).toBe('disconnected');
    await page.click('#connect');
    expect(await textOf('#status', /^open$/)).toBe('open');
    expect(await textOf('#sub', new RegExp(`^${HOME} from`))).toMatch(HOME);
    await shot('connected');

    const hub = await hubOnline('browser-lamp');
    await hub.report({ lamp: { on: false, level: 12 } });
    const line = await textOf('#events', /"level":12/);
    expect(line).toMatch(/"kind":"state"/);
    expect(line).toMatch(/"hub":"browser-lamp"/);
    const offset = /"pos":\{"epoch":"(\w+)","offset":(\d+)\},"kind":"state"/.exec(line);
    expect(offset).not.toBeNull();
    expect(await textOf('#pos', /:\d+$/)).toBe(`${offset![1]}:${offset![2]}`);
    await shot('event');

    await page.fill('#hub', 'browser-lamp');
    await page.fill('#device', 'lamp');
    await page.fill('#set', '{"on":true,"level":80}');
    await page.click('#send');
    expect(await textOf('#result', /^(ok|error) /)).toBe('ok {"on":true,"level":80}');
    await shot('command');
    // the hub's answer in the result box shows control and bidi characters as the log does (review "unicode")
    await page.fill('#set', '{"label":"x\u202ey"}');
    await page.click('#send');
    const shown = await textOf('#result', /label/);
    expect(shown).toBe('ok {"on":true,"level":80,"label":"x\\u202ey"}');
    expect(shown).not.toMatch(/\u202e/);

    await provision('browser-off');
    await page.fill('#hub', 'browser-off');
    await page.click('#send');
    expect(await textOf('#result', /^error /)).toMatch(/^error hub_offline \(temporary\)/);
    await shot('offline');
    expect(pageErrors).toEqual([]);
  });

  it('shows a drop, the refused attempts, and the recovery of the event missed meanwhile', async () => {
    const hub = hubs[0]!;
    // the page reads the token at every attempt: a wrong one keeps it away until the right one is back
    await page.fill('#token', 'not-a-token');
    // a message over the node's 16 KiB limit: answered frame_too_large, the socket closed with 1009
    await page.fill('#hub', 'browser-lamp');
    await page.fill('#set', JSON.stringify({ note: 'x'.repeat(20_000) }));
    await page.click('#send');
    expect(await textOf('#status', /reconnecting in \d+ ms/)).toMatch(/^closed 1009 frame_too_large/);
    await hub.report({ lamp: { level: 99 } }); // acknowledged, so in the history: the page misses it
    await textOf('#status', /^closed 1006/); // an attempt refused with 401 (a browser sees 1006)
    await shot('dropped');
    expect(await page.textContent('#events')).not.toMatch(/"level":99/);

    await page.fill('#token', token);
    expect(await textOf('#sub', /recovered/)).toMatch(new RegExp(`^${HOME} from \\w+:\\d+, recovered`));
    await textOf('#events', /"level":99/);
    expect(await textOf('#status', /^open$/)).toBe('open');
    // newest first: the missed event came after the answer that said it would
    const lines = await page.$$eval('#events div', (divs) => divs.map((d) => d.textContent ?? ''));
    expect(lines.findIndex((l) => /"level":99/.test(l))).toBeLessThan(lines.findIndex((l) => /recovered/.test(l)));
    await shot('recovered');
    expect(pageErrors).toEqual([]);
  });

  it('two connect clicks at once leave one client, which disconnect closes; the log keeps the newest 500 lines, control and bidi characters shown as escapes', async () => {
    const subscriptions = async () => {
      const text = await (await fetch(`${server.adminUrl}/metrics`, { headers: { authorization: `Bearer ${server.adminToken}` } })).text();
      return Number(/^tier_app_subscriptions (\d+)/m.exec(text)?.[1]);
    };
    // both clicks in one task: the first client's close was never answered in between (it had kept running)
    await page.evaluate(() => {
      document.getElementById('connect')!.click();
      document.getElementById('connect')!.click();
    });
    expect(await textOf('#status', /^open$/)).toBe('open');
    await page.click('#disconnect');
    expect(await page.textContent('#status')).toBe('disconnected');
    for (let n = await subscriptions(); n !== 0; n = await subscriptions()) await new Promise((r) => setTimeout(r, 100));

    await page.click('#connect');
    await textOf('#sub', new RegExp(`^${HOME} from`));
    const hub = hubs[0]!;
    for (let r = 0; r < 12; r++) {
      const devices = Object.fromEntries(Array.from({ length: 50 }, (_, d) => [`flood-${d}`, { n: r * 50 + d }]));
      await hub.report(devices);
    }
    await hub.report({ lamp: { label: 'line\u202ebackwards\u0085next' } });
    const line = await textOf('#events', /backwards/);
    expect(line).toContain('line\\u202ebackwards\\u0085next');
    expect(line).not.toMatch(/[\u202e\u0085]/);
    const lines = await page.$$eval('#events div', (divs) => divs.map((d) => d.textContent ?? ''));
    expect(lines.length).toBe(500);
    expect(lines[0]).toMatch(/backwards/);
    expect(lines.some((l) => /"n":599\b/.test(l))).toBe(true);
    await shot('log-bounded');
    expect(pageErrors).toEqual([]);
  });

  it("the client library connects at the browser's `online` event instead of waiting out its backoff (review clientlib)", async () => {
    await page.goto(`${server.httpUrl}/`);
    // a string: vitest would rewrite an import() written here into its own loader, absent in the page
    const script = `(async (good) => {
      const { HubtierClient } = await import(location.origin + '/client.js');
      const states = [];
      let token = 'not-a-token';
      const until = (state) => new Promise((resolve, reject) => {
        const started = Date.now();
        const t = setInterval(() => {
          if (states.at(-1) === state) resolve(clearInterval(t));
          else if (Date.now() - started > 10000) reject(new Error('no ' + state + ': ' + states.join(' ')));
        }, 10);
      });
      const c = new HubtierClient({ url: location.origin, token: () => token, backoff: { initialMs: 60000, maxMs: 60000, factor: 2, jitter: 0 }, onState: (s) => states.push(s.state) });
      await until('closed');
      // the refused attempt waits 60 s; the network comes back, with a good token
      token = good;
      window.dispatchEvent(new Event('online'));
      await until('open');
      await c.close();
      // closed for good: the event no longer reaches it
      window.dispatchEvent(new Event('online'));
      return states;
    })(${JSON.stringify(token)})`;
    expect(await page.evaluate(script)).toEqual(['connecting', 'closed', 'connecting', 'open', 'closed']);
    expect(pageErrors).toEqual([]);
  });
});
