import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { SignJWT } from 'jose';
import { APP_SUBPROTOCOL } from '../../proto/app.js';
import { hubAuthHeaderMap, hubCredentials, signHub } from '../../src/auth/hub-signature.js';
import { api, logLine, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { upgradeAnswer } from '../helpers/upgrade-answer.js';
import { HubClient } from '../../load/wire/hub-client.js';

/** The refusal's status and body, or 'open'. */
async function attempt(url: string, headers: Record<string, string>): Promise<{ status: number; body: any } | 'open'> {
  const answer = await upgradeAnswer(url, headers);
  return answer === 'open' ? answer : { status: answer.status, body: answer.body };
}

/** The value of one Prometheus series in an exposition text; 0 when absent (a counter not yet counted). */
function metric(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe('hub and user admission (real server process)', () => {
  let server: ServerProcess;
  let secret: string;

  beforeAll(async () => {
    server = await startServerProcess();
    const res = await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId: 'adm-1', homeId: 'home-a', model: 'h2' });
    expect(res.status).toBe(201);
    secret = res.body.secret;
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
  });

  it('refuses a forged signature with 401 bad_signature before the upgrade', async () => {
    const c = hubCredentials('adm-1', 'not-the-secret');
    const r = await attempt(`${server.wsUrl}/hub/v1`, hubAuthHeaderMap(c));
    expect(r).toMatchObject({ status: 401, body: { code: 'bad_signature', num: 202, temporary: false } });
  });

  it('accepts a good signature once and refuses the replayed nonce', async () => {
    const c = hubCredentials('adm-1', secret);
    expect(await attempt(`${server.wsUrl}/hub/v1`, hubAuthHeaderMap(c))).toBe('open');
    const replay = await attempt(`${server.wsUrl}/hub/v1`, hubAuthHeaderMap(c));
    expect(replay).toMatchObject({ status: 401, body: { code: 'nonce_reused' } });
  });

  it('refuses a stale timestamp', async () => {
    const c = hubCredentials('adm-1', secret, Date.now() - 3_600_000);
    expect(await attempt(`${server.wsUrl}/hub/v1`, hubAuthHeaderMap(c))).toMatchObject({ status: 401, body: { code: 'stale_timestamp' } });
  });

  it("refuses an id not provisioned exactly as a provisioned one's bad signature (ids cannot be probed, review \"tenant\"), its log line and metric saying unknown_hub; and missing credentials", async ({ signal }) => {
    const unknown = await attempt(`${server.wsUrl}/hub/v1`, hubAuthHeaderMap(hubCredentials('adm-unknown', secret)));
    const forged = await attempt(`${server.wsUrl}/hub/v1`, hubAuthHeaderMap(hubCredentials('adm-1', 'not-the-secret')));
    expect(unknown).toMatchObject({ status: 401, body: { code: 'bad_signature' } });
    expect(unknown).toEqual(forged);
    expect(await logLine(server, signal, (l) => l.msg === 'hub handshake refused' && l.hubId === 'adm-unknown')).toMatchObject({ code: 'unknown_hub' });
    const text = await (await fetch(`${server.adminUrl}/metrics`)).text();
    expect(metric(text, 'tier_hub_upgrades_refused_total{code="unknown_hub"}')).toBeGreaterThan(0);
    expect(await attempt(`${server.wsUrl}/hub/v1`, {})).toMatchObject({ status: 401, body: { code: 'unauthorized', field: 'x-hub-id' } });
  });

  it('verifies the ts digits as sent: a zero-padded clock signed with its zeros is admitted, signed without them refused', async () => {
    const c = hubCredentials('adm-1', secret);
    const padded = `0${c.ts}`;
    const headers = { ...hubAuthHeaderMap(c), 'x-hub-ts': padded, 'x-hub-signature': signHub(secret, c.hubId, padded, c.nonce) };
    expect(await attempt(`${server.wsUrl}/hub/v1`, headers)).toBe('open');
    const other = hubCredentials('adm-1', secret);
    const unpaddedSignature = { ...hubAuthHeaderMap(other), 'x-hub-ts': `0${other.ts}` };
    expect(await attempt(`${server.wsUrl}/hub/v1`, unpaddedSignature)).toMatchObject({ status: 401, body: { code: 'bad_signature' } });
  });

  it('accepts credentials as query parameters too', async () => {
    const c = hubCredentials('adm-1', secret);
    const q = new URLSearchParams({ hub: c.hubId, ts: String(c.ts), nonce: c.nonce, signature: signHub(secret, c.hubId, c.ts, c.nonce) });
    expect(await attempt(`${server.wsUrl}/hub/v1?${q}`, {})).toBe('open');
  });

  it('refuses a JWT of another home (403) and a JWT signed with another key (401)', async () => {
    const key = new TextEncoder().encode(server.jwtSecret);
    const other = await new SignJWT({ homes: ['home-b'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('u1').setExpirationTime('1h').sign(key);
    const cmd = await api(server.httpUrl, 'POST', '/v1/hubs/adm-1/devices/d1/commands', other, { set: { on: true } });
    expect(cmd).toMatchObject({ status: 403, body: { code: 'forbidden' } });
    const shadow = await api(server.httpUrl, 'GET', '/v1/hubs/adm-1/shadow', other);
    expect(shadow.status).toBe(403);
    const forged = await new SignJWT({ homes: ['home-a'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('u1').sign(new TextEncoder().encode('some-other-secret-0123456789'));
    expect((await api(server.httpUrl, 'GET', '/v1/hubs/adm-1', forged)).status).toBe(401);
    expect((await api(server.httpUrl, 'GET', '/v1/hubs/adm-1', undefined)).body.code).toBe('unauthorized');
    const app = await attempt(`${server.wsUrl}/app/v1?token=${forged}`, {});
    expect(app).toMatchObject({ status: 401, body: { code: 'unauthorized' } });
  });

  it('lets a user of the home read the hub, and only the admin provision', async () => {
    const key = new TextEncoder().encode(server.jwtSecret);
    const mine = await new SignJWT({ homes: ['home-a'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('u2').setExpirationTime('1h').sign(key);
    const hub = await api(server.httpUrl, 'GET', '/v1/hubs/adm-1', mine);
    expect(hub).toMatchObject({ status: 200, body: { hubId: 'adm-1', homeId: 'home-a', model: 'h2', online: false } });
    const prov = await api(server.httpUrl, 'POST', '/v1/admin/hubs', mine, { hubId: 'adm-2', homeId: 'home-a' });
    expect(prov).toMatchObject({ status: 403, body: { code: 'forbidden' } });
    const dup = await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId: 'adm-1', homeId: 'home-a' });
    expect(dup).toMatchObject({ status: 409, body: { code: 'already_exists' } });
  });

  it('answers bad HTTP input with 400 naming the field, and oversized bodies with 413', async () => {
    const t = server.adminToken;
    expect(await api(server.httpUrl, 'POST', '/v1/hubs/adm-1/devices/d1/commands', t, '{not json')).toMatchObject({ status: 400, body: { code: 'malformed_frame' } });
    expect(await api(server.httpUrl, 'POST', '/v1/hubs/adm-1/devices/d1/commands', t, { set: { on: [1] } })).toMatchObject({ status: 400, body: { field: 'set.on' } });
    expect(await api(server.httpUrl, 'POST', '/v1/hubs/adm-1/devices/d1/commands', t, { nothing: 1 })).toMatchObject({ status: 400, body: { field: 'set' } });
    expect(await api(server.httpUrl, 'POST', '/v1/hubs/adm-1/devices/d1/commands', t, { set: { on: true }, timeoutMs: -5 })).toMatchObject({ status: 400, body: { field: 'timeoutMs' } });
    expect(await api(server.httpUrl, 'POST', '/v1/hubs/adm-1/devices/bad.id/commands', t, { set: { on: true } })).toMatchObject({ status: 400, body: { field: 'deviceId' } });
    expect(await api(server.httpUrl, 'POST', '/v1/admin/hubs', t, { hubId: 'x y', homeId: 'h' })).toMatchObject({ status: 400, body: { field: 'hubId' } });
    const big = await api(server.httpUrl, 'POST', '/v1/hubs/adm-1/devices/d1/commands', t, { set: { s: 'x'.repeat(100_000) } });
    expect(big).toMatchObject({ status: 413, body: { code: 'frame_too_large' } });
    expect((await api(server.httpUrl, 'GET', '/v1/nothing-here', t)).status).toBe(404);
    // the process is still serving
    expect((await fetch(`${server.adminUrl}/healthz`)).status).toBe(200);
  });

  it('serves an OpenAPI document that describes every registered route', async () => {
    const res = await api(server.httpUrl, 'GET', '/v1/openapi.json', undefined);
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toBe('3.1.0');
    const operations = Object.entries(doc.paths as Record<string, Record<string, any>>).flatMap(([path, ops]) => Object.entries(ops).map(([m, op]) => ({ key: `${m} ${path}`, op })));
    // the API, the automation API and the document itself, all registered and all described
    expect(operations.length).toBeGreaterThanOrEqual(25);
    expect(operations.filter((o) => o.op.summary === 'undocumented').map((o) => o.key)).toEqual([]);
    const command = doc.paths['/v1/hubs/{hubId}/devices/{deviceId}/commands'].post;
    expect(command.responses['409'].description).toContain('hub_offline');
    expect(command.responses['504'].description).toContain('command_timeout');
    expect(command.parameters.filter((p: any) => p.in === 'path').map((p: any) => p.name)).toEqual(['hubId', 'deviceId']);
    expect(command.parameters).toContainEqual({ $ref: '#/components/parameters/RequestId' });
    expect(doc.paths['/v1/homes/{homeId}/rules/{ruleId}/test'].post.summary).toMatch(/dry run/i);
  });

  it('serves the demo console, and accepts the app token as a bearer subprotocol as the page sends it', async () => {
    const page = await fetch(`${server.httpUrl}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await page.text()).toContain('<script type="module" src="console.js"></script>');
    // the page's script, a file of its own (no inline script: the CSP allows 'self' only)
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self';");
    expect(await (await fetch(`${server.httpUrl}/console.js`)).text()).toContain("import { HubtierClient } from './client.js'");
    // the client library the page imports sends the token as the bearer subprotocol
    expect(await (await fetch(`${server.httpUrl}/client.js`)).text()).toMatch(/`bearer\.\$\{token\}`[^]*`bearer64\./);
    const ws = new WebSocket(`${server.wsUrl}/app/v1`, [`bearer.${server.adminToken}`]);
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    // a client offering only the bearer subprotocol (the library before 2026-12-04) is answered with it
    expect(ws.protocol).toBe(`bearer.${server.adminToken}`);
    const both = new WebSocket(`${server.wsUrl}/app/v1`, [APP_SUBPROTOCOL, `bearer.${server.adminToken}`]);
    await new Promise((resolve, reject) => (both.once('open', resolve), both.once('error', reject)));
    expect(both.protocol).toBe(APP_SUBPROTOCOL);
    both.close();
    const reply = new Promise<any>((resolve) => ws.once('message', (d: Buffer) => resolve(JSON.parse(d.toString()))));
    ws.send(JSON.stringify({ op: 'ping', id: 7 }));
    expect(await reply).toMatchObject({ op: 'ok', id: 7 });
    ws.close();
    const refused = await new Promise<number>((resolve) => {
      const bad = new WebSocket(`${server.wsUrl}/app/v1`, ['bearer.not-a-token']);
      bad.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      bad.on('error', () => {});
    });
    expect(refused).toBe(401);
    // a bearer64 that is not base64url is refused as a bad token, and the node goes on; never
    // passed over for an Authorization header beside it (until 2026-12-06 that header decided), nor
    // is a bearer subprotocol without a token, or a ?token= without one
    const answer = (url: string, protocols: string[]) =>
      new Promise<{ status: number; body: string }>((resolve) => {
        const ws = new WebSocket(url, protocols, { headers: { authorization: `Bearer ${server.adminToken}` } });
        ws.on('unexpected-response', (_req, res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        ws.on('open', () => (ws.close(), resolve({ status: 101, body: '' })));
        ws.on('error', () => {});
      });
    expect(await answer(`${server.wsUrl}/app/v1`, ['bearer64.!!!'])).toMatchObject({ status: 401, body: expect.stringContaining('subprotocol bearer64.<token>: not the unpadded base64url of a token') });
    expect(await answer(`${server.wsUrl}/app/v1`, ['bearer.'])).toMatchObject({ status: 401, body: expect.stringContaining('subprotocol bearer.<token>: no token') });
    expect(await answer(`${server.wsUrl}/app/v1?token=`, [`bearer.${server.adminToken}`])).toMatchObject({ status: 401, body: expect.stringContaining('?token= is empty') });
    expect(await answer(`${server.wsUrl}/app/v1`, [`bearer.${server.adminToken}`])).toMatchObject({ status: 101 });
  });

  it("reports readiness with the uWS binding on the admin port, its data disk's space, and counts refused upgrades by code", async () => {
    const r = await api(server.adminUrl, 'GET', '/readyz', undefined);
    expect(r).toMatchObject({ status: 200, body: { ready: true, mode: 'embedded', uws: { native: true } } });
    // the embedded default's DATA_DIR (a temporary directory here): what HubtierDataDiskFilling reads
    const text = await (await fetch(`${server.adminUrl}/metrics`)).text();
    expect(metric(text, 'tier_data_dir_available_bytes')).toBeGreaterThan(0);
    expect(metric(text, 'tier_data_dir_size_bytes')).toBeGreaterThanOrEqual(metric(text, 'tier_data_dir_available_bytes'));
    const refused = async () => metric(await (await fetch(`${server.adminUrl}/metrics`)).text(), 'tier_hub_upgrades_refused_total{code="bad_signature"}');
    const before = await refused();
    expect(await attempt(`${server.wsUrl}/hub/v1`, hubAuthHeaderMap(hubCredentials('adm-1', 'not-the-secret')))).toMatchObject({ status: 401 });
    expect(await refused()).toBe(before + 1);
  });
});

describe('admission control (real server process with a full node)', () => {
  let server: ServerProcess;
  const secrets: string[] = [];

  beforeAll(async () => {
    server = await startServerProcess({ TIER_MAX_HUB_SESSIONS: '2' });
    for (let i = 0; i < 3; i++) {
      secrets.push((await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId: `full-${i}`, homeId: 'h' })).body.secret);
    }
  });
  afterAll(async () => {
    await server.stop();
  });

  it('refuses a hub beyond the maximum of the node with 503 busy and Retry-After, and admits it once a socket closes', async () => {
    const open: WebSocket[] = [];
    for (let i = 0; i < 2; i++) {
      const ws = new WebSocket(`${server.wsUrl}/hub/v1`, { headers: hubAuthHeaderMap(hubCredentials(`full-${i}`, secrets[i]!)) });
      await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
      open.push(ws);
    }
    const refused = await upgradeAnswer(`${server.wsUrl}/hub/v1`, hubAuthHeaderMap(hubCredentials('full-2', secrets[2]!)));
    expect(refused).toMatchObject({ status: 503, retryAfter: '1', body: { code: 'busy', temporary: true } });
    const closed = new Promise((r) => open[0]!.once('close', r));
    open[0]!.close();
    await closed;
    expect(await attempt(`${server.wsUrl}/hub/v1`, hubAuthHeaderMap(hubCredentials('full-2', secrets[2]!)))).toBe('open');
    open[1]!.close();
  });

  it('a full node takes a hub replacing its own session (a half-open socket it gave up on): the old one is taken over', async () => {
    const hubs = [0, 1].map((i) => new HubClient({ url: server.wsUrl, hubId: `full-${i}`, secret: secrets[i]!, heartbeat: false }));
    for (const h of hubs) await h.connect();
    expect(await upgradeAnswer(`${server.wsUrl}/hub/v1`, hubAuthHeaderMap(hubCredentials('full-2', secrets[2]!)))).toMatchObject({ status: 503, body: { code: 'busy' } });
    // full-0 connects again, its old socket still open: admitted, and the old session is taken over
    const again = new HubClient({ url: server.wsUrl, hubId: 'full-0', secret: secrets[0]!, heartbeat: false });
    const takenOver = hubs[0]!.closed;
    await again.connect();
    expect(await takenOver).toMatchObject({ code: 4000 });
    expect(await upgradeAnswer(`${server.wsUrl}/hub/v1`, hubAuthHeaderMap(hubCredentials('full-2', secrets[2]!)))).toMatchObject({ status: 503 });
    await Promise.all([again.terminate(), hubs[1]!.terminate()]);
  });

  it('logs busy refusals per reason, not per source: a storm from many addresses writes a few lines', async ({ signal }) => {
    const open: WebSocket[] = [];
    for (let i = 0; i < 2; i++) {
      const ws = new WebSocket(`${server.wsUrl}/hub/v1`, { headers: hubAuthHeaderMap(hubCredentials(`full-${i}`, secrets[i]!)) });
      await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
      open.push(ws);
    }
    const busyLines = () => server.logs.filter((l) => l.msg === 'hub handshake refused' && l.code === 'busy').length;
    const before = busyLines();
    // 30 hubs, each behind its own address (127.0.0.2, .3, …): as many sources as hubs
    for (let i = 0; i < 30; i++) {
      const refused = await upgradeAnswer(`${server.wsUrl}/hub/v1`, hubAuthHeaderMap(hubCredentials('full-2', secrets[2]!)), `127.0.0.${2 + i}`);
      expect(refused).toMatchObject({ status: 503, retryAfter: '1', body: { code: 'busy', message: expect.stringMatching(/maximum of 2 hub sessions/) } });
    }
    // a request's access line, written after them: the busy lines are in by then
    await fetch(`${server.httpUrl}/v1/hubs/full-2`, { headers: { 'x-request-id': 'after-the-storm' } });
    await logLine(server, signal, (l) => l.msg === 'http request' && l.requestId === 'after-the-storm');
    const logged = busyLines() - before;
    expect(logged).toBeGreaterThan(0);
    expect(logged).toBeLessThanOrEqual(10);
    expect(server.logs.filter((l) => l.msg === 'hub handshake refused' && l.code === 'busy').at(-1)).toMatchObject({ reason: 'full', hubId: 'full-2' });
    const counted = metric(await (await fetch(`${server.adminUrl}/metrics`)).text(), 'tier_hub_upgrades_refused_total{code="busy"}');
    expect(counted).toBeGreaterThanOrEqual(31);
    for (const ws of open) ws.close();
  });
});
