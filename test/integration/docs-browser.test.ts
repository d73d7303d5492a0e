/**
 * The API documentation page (/docs) in real headless Chromium against a node process: Swagger UI,
 * served by the node, renders every operation of /v1/openapi.json with its examples, the description
 * names the two WebSocket endpoints and its links open the protocol documents, "Try it out" reaches
 * the node, and no request leaves the node (the page must work on a closed network). Screenshots go
 * to test/artifacts/. Skipped where /usr/bin/chromium is absent (.ci/run installs it).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = new URL('../artifacts/', import.meta.url);
const found = existsSync(CHROMIUM);

describe.skipIf(!found)(`API documentation page in headless Chromium${found ? '' : ` (skipped: ${CHROMIUM} not found; .ci/run installs it with apt)`}`, () => {
  let server: ServerProcess;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];
  /** every URL the browser asked for, from any page or worker of the context */
  const requested: string[] = [];

  const shot = (name: string) => page.screenshot({ path: new URL(`docs-${name}.png`, ARTIFACTS).pathname, fullPage: true });
  const elsewhere = () => requested.filter((u) => !(u.startsWith(`${server.httpUrl}/`) || u.startsWith('data:')));

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    server = await startServerProcess();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.on('request', (req) => requested.push(req.url()));
    page = await context.newPage();
    page.setDefaultTimeout(15_000);
    // a script or style the page's CSP blocks shows up here as an error, not only as a missing widget
    await page.addInitScript(() => document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP blocked ${e.blockedURI || 'inline'} (${e.violatedDirective})`)));
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });
  });

  afterAll(async () => {
    await browser?.close();
    if (server) expect(await server.stop()).toBe(0);
  });

  it('renders every operation of the node’s document, with a fleet operation’s request and response examples', async () => {
    const doc = (await (await fetch(`${server.httpUrl}/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const operations = Object.values(doc.paths).reduce((n, methods) => n + Object.keys(methods).length, 0);
    expect(operations).toBeGreaterThanOrEqual(26);

    await page.goto(`${server.httpUrl}/docs`);
    await page.waitForSelector('.opblock-summary-path[data-path="/v1/admin/hubs"]');
    expect(await page.textContent('.info .title')).toMatch(/^hubtier HTTP API/);
    expect(await page.locator('.opblock').count()).toBe(operations);
    expect(await page.textContent('#operations-hubs-postV1HubsByHubIdDevicesByDeviceIdCommands')).toMatch(/Run a command on a device/);
    await shot('overview');

    // provisioning a hub (the fleet API): its request example, and the 201 answer's with the secret
    const op = page.locator('#operations-admin-postV1AdminHubs');
    await op.locator('.opblock-summary').click();
    const request = op.locator('.opblock-section-request-body');
    await expect.poll(() => request.textContent()).toMatch(/"homeId": "home-42"/);
    expect(await request.textContent()).toMatch(/"model": "h2"/);
    const created = op.locator('.response[data-code="201"]');
    await expect.poll(() => created.textContent()).toMatch(/"secret": "q3Zk0m1v8yXr2c9Tn4Ub7Wd6Ja5Le0Hf"/);
    // an error answer's example is the code's own refusal
    expect(await op.locator('.response[data-code="409"]').textContent()).toMatch(/"code": "already_exists"/);
    await op.screenshot({ path: new URL('docs-provision.png', ARTIFACTS).pathname });

    expect(pageErrors).toEqual([]);
    expect(elsewhere()).toEqual([]);
  });

  it('names /hub/v1 and /app/v1 in the description, and its links open the protocol documents on the node', async () => {
    const info = page.locator('.information-container');
    const text = (await info.textContent()) ?? '';
    expect(text).toMatch(/\/hub\/v1: where hubs connect/);
    expect(text).toMatch(/\/app\/v1: where apps connect/);

    // Swagger UI opens a description's links in a new tab: shown there as text, not downloaded
    const follow = async (href: string) => {
      const [tab] = await Promise.all([page.context().waitForEvent('page'), info.locator(`a[href="${href}"]`).first().click()]);
      await tab.waitForLoadState();
      expect(tab.url()).toBe(`${server.httpUrl}${href}`);
      const body = (await tab.textContent('body')) ?? '';
      await tab.close();
      return body;
    };
    expect(await follow('/docs/asyncapi.yaml')).toMatch(/^asyncapi: 3\.0\.0/);
    expect(await follow('/docs/protocol.md')).toMatch(/## 11\. App protocol \(`\/app\/v1`\)/);

    expect(pageErrors).toEqual([]);
    expect(elsewhere()).toEqual([]);
  });

  it('“Try it out” calls the node itself (the document’s server is the node)', async () => {
    // its operationId has a dot (getV1Openapi.json), so found by its path, not by id
    const op = page.locator('.opblock', { has: page.locator('.opblock-summary-path[data-path="/v1/openapi.json"]') });
    await op.locator('.opblock-summary').click();
    await op.locator('button.try-out__btn').click();
    await op.locator('button.execute').click();
    const live = op.locator('.live-responses-table .response');
    await expect.poll(() => live.first().textContent()).toMatch(/^\s*200/);
    expect(await op.locator('.request-url').textContent()).toContain(`${server.httpUrl}/v1/openapi.json`);
    await op.screenshot({ path: new URL('docs-try-it-out.png', ARTIFACTS).pathname });

    expect(pageErrors).toEqual([]);
    expect(requested).toContain(`${server.httpUrl}/docs`);
    expect(elsewhere()).toEqual([]);
  });
});
