/**
 * `npm run fleet -- import FILE`: a CSV and a JSON-lines file provisioned through a running node
 * (in-process), each secret written once to a new file only the user can read and good for a
 * handshake; unreadable lines and refused hubs reported with their line numbers; the command line
 * refuses an existing output file. Lines the node would refuse are reported and not sent, a batch
 * refused whole is sent again in parts (a stand-in node refusing as a stricter one would), and a
 * URL that answers no JSON stops the import with its status, leaving no file behind. Ctrl-C stops
 * it as a node away does: the secrets issued are in the output file, not in a hidden partial one.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../../load/wire/hub-client.js';
import { importHubs } from '../../src/fleet-import.js';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';
import { api, scriptArgs } from '../helpers/server-process.js';

const ADMIN = 'fleet-cli-admin-token-0123456789';
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'hubtier-fleet-cli-'));
let node: InProcessNode;

beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'fleet-cli-jwt-secret-0123456789abcdef');
  await api(node.http, 'POST', '/v1/admin/hubs', ADMIN, { hubId: 'imp-taken', homeId: 'h' });
});

afterAll(async () => {
  await node?.server.close();
});

/** A stand-in for the batch route: `answer` decides, given the hubs of each request. */
async function standIn(answer: (hubs: Array<{ hubId: string }>, res: ServerResponse) => void): Promise<{ url: string; batches: string[][]; close: () => Promise<void> }> {
  const batches: string[][] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const { hubs } = JSON.parse(body) as { hubs: Array<{ hubId: string }> };
      batches.push(hubs.map((h) => h.hubId));
      answer(hubs, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, batches, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** A CSV of `n` hubs named `prefix-i`, lines 2 to n + 1. */
function hubsCsv(file: string, prefix: string, n: number): string {
  writeFileSync(file, ['hubId,homeId', ...Array.from({ length: n }, (_, i) => `${prefix}-${i},h`)].join('\n'));
  return file;
}

const lineRange = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
const provisioned = (hubs: Array<{ hubId: string }>) => ({ results: hubs.map((h) => ({ hubId: h.hubId, ok: true, secret: `s-${h.hubId}` })), created: hubs.length, failed: 0 });

function secretsOf(file: string): Map<string, string> {
  const [header, ...rows] = readFileSync(file, 'utf8').trim().split('\n');
  expect(header).toBe('hubId,secret');
  return new Map(rows.map((r) => r.split(',') as [string, string]));
}

describe('fleet import', () => {
  it('provisions a CSV file, writes each secret once (mode 0600), reports refused and unreadable lines', async () => {
    const csv = join(dir, 'hubs.csv');
    writeFileSync(csv, 'hubId,homeId,model\nimp-1,imp-home,h2\nimp-2,imp-home\n,imp-home\nimp-taken,imp-home\n');
    const out = join(dir, 'secrets.csv');
    const report = await importHubs(csv, { url: node.http, adminToken: ADMIN, out });
    expect(report.created).toBe(2);
    expect(report.failed.map((f) => [f.line, f.code])).toEqual([
      [4, 'invalid_field'],
      [5, 'already_exists'],
    ]);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const secrets = secretsOf(out);
    expect([...secrets.keys()]).toEqual(['imp-1', 'imp-2']);
    const c = new HubClient({ url: node.wsUrl, hubId: 'imp-1', secret: secrets.get('imp-1')!, heartbeat: false });
    await c.connect();
    await c.terminate();
    expect((await api(node.http, 'GET', '/v1/admin/hubs/imp-1', ADMIN)).body).toMatchObject({ homeId: 'imp-home', model: 'h2' });
  });

  it('provisions JSON lines with labels, over more than one batch', async () => {
    const file = join(dir, 'hubs.jsonl');
    const lines = Array.from({ length: 1_050 }, (_, i) => JSON.stringify({ hubId: `imj-${i}`, homeId: 'imj-home', labels: { line: 'l1' } }));
    writeFileSync(file, [...lines, '{not json'].join('\n'));
    const out = join(dir, 'secrets-jsonl.csv');
    const report = await importHubs(file, { url: node.http, adminToken: ADMIN, out });
    expect(report.created).toBe(1_050);
    expect(report.failed).toEqual([{ line: 1_051, hubId: null, code: 'malformed_frame', message: 'not JSON' }]);
    expect(secretsOf(out).size).toBe(1_050);
    expect((await api(node.http, 'GET', '/v1/admin/hubs/imj-1049', ADMIN)).body.labels).toEqual({ line: 'l1' });
  });

  it('the command line: usage, an existing output file refused, exit 1 when a hub was refused', async () => {
    const cli = (...args: string[]) => run(process.execPath, [...scriptArgs('src/fleet-cli.ts'), ...args], { cwd: ROOT, env: { ...process.env, ADMIN_TOKEN: ADMIN } }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect((await cli()).stderr).toContain('usage: npm run fleet -- import FILE --out SECRETS');
    const csv = join(dir, 'cli.csv');
    writeFileSync(csv, 'hubId,homeId\nimc-1,h\nimp-taken,h\n');
    const out = join(dir, 'cli-secrets.csv');
    const first = await cli('import', csv, '--out', out, '--url', node.http);
    expect(first.code).toBe(1);
    expect(first.stdout).toContain('provisioned 1 hubs, 1 refused');
    expect(first.stderr).toContain('line 3 (imp-taken): already_exists');
    const again = await cli('import', csv, '--out', out, '--url', node.http);
    expect(again).toMatchObject({ code: 2, stderr: expect.stringContaining('exists: secrets are written once') });
    const other = await standIn((_hubs, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(''));
    try {
      const out2 = join(dir, 'cli-secrets-2.csv');
      const wrong = await cli('import', csv, '--out', out2, '--url', other.url);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toContain(`stopped: ${other.url}/v1/admin/hubs:batch answered 200 OK with text/plain, not the node's JSON`);
      expect(wrong.stdout).toContain('provisioned 0 hubs, 0 refused, 2 not attempted (lines 2-3); no secret was issued, no file written');
      expect(existsSync(out2)).toBe(false);
    } finally {
      await other.close();
    }
  });

  it('checks each line before sending: bad lines reported by number, the rest of their batch and the batches after provisioned', async () => {
    const file = join(dir, 'mixed.jsonl');
    const lines = Array.from({ length: 1_100 }, (_, i) => JSON.stringify({ hubId: `imx-${i}`, homeId: `imx-home-${i % 5}` }));
    lines[600] = JSON.stringify({ hubId: 'bad.id', homeId: 'imx-home' });
    lines[700] = JSON.stringify({ hubId: 'imx-long', homeId: 'imx-home', model: 'm'.repeat(65) });
    lines[800] = JSON.stringify({ hubId: 'imx-label', homeId: 'imx-home', labels: { site: 'x'.repeat(129) } });
    lines[900] = JSON.stringify({ hubId: 'imx-proto', homeId: '__proto__' });
    writeFileSync(file, lines.join('\n'));
    const out = join(dir, 'secrets-mixed.csv');
    const report = await importHubs(file, { url: node.http, adminToken: ADMIN, out });
    expect(report.failed.map((f) => [f.line, f.hubId, f.code, f.message.split(':')[0]])).toEqual([
      [601, 'bad.id', 'invalid_field', 'hubId'],
      [701, 'imx-long', 'invalid_field', 'model'],
      [801, 'imx-label', 'invalid_field', 'labels.site'],
      [901, 'imx-proto', 'invalid_field', 'homeId'],
    ]);
    expect(report).toMatchObject({ created: 1_096, notAttempted: [], unanswered: [], stopped: null, secrets: out });
    expect(secretsOf(out).size).toBe(1_096);
    for (const id of ['imx-0', 'imx-999', 'imx-1099']) expect((await api(node.http, 'GET', `/v1/admin/hubs/${id}`, ADMIN)).status, id).toBe(200);
  });

  it('a batch the node refuses whole is sent again in parts: only the hubs at fault are refused', async () => {
    // a node stricter than this tool: hubs named `srv-bad*` refused naming the item, bodies of more than 8 hubs refused unnamed
    const node2 = await standIn((hubs, res) => {
      const bad = hubs.findIndex((h) => h.hubId.startsWith('srv-bad'));
      if (bad >= 0) json(res, 400, { ok: false, code: 'invalid_field', message: `hubs[${bad}].hubId: not here`, field: `hubs[${bad}].hubId` });
      else if (hubs.length > 8) json(res, 413, { ok: false, code: 'frame_too_large', message: 'body larger than allowed' });
      else json(res, 200, provisioned(hubs));
    });
    try {
      const csv = join(dir, 'parts.csv');
      const ids = Array.from({ length: 20 }, (_, i) => (i === 3 || i === 15 ? `srv-bad-${i}` : `srv-${i}`));
      writeFileSync(csv, ['hubId,homeId', ...ids.map((id) => `${id},h`)].join('\n'));
      const out = join(dir, 'secrets-parts.csv');
      const report = await importHubs(csv, { url: node2.url, adminToken: ADMIN, out });
      expect(report.failed).toEqual([
        { line: 5, hubId: 'srv-bad-3', code: 'invalid_field', message: 'hubs[3].hubId: not here' },
        { line: 17, hubId: 'srv-bad-15', code: 'invalid_field', message: expect.stringMatching(/^hubs\[\d+\]\.hubId: not here$/) },
      ]);
      expect(report).toMatchObject({ created: 18, notAttempted: [], unanswered: [], stopped: null });
      expect([...secretsOf(out).keys()].sort()).toEqual(ids.filter((id) => !id.startsWith('srv-bad')).sort());
    } finally {
      await node2.close();
    }
  });

  it('a URL that answers no JSON: stopped with the URL and status, no file left, and the same --out works next', async () => {
    const other = await standIn((_hubs, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>not here</h1>'));
    const csv = join(dir, 'wrong-url.csv');
    writeFileSync(csv, 'hubId,homeId\nimw-1,h\nimw-2,h\n');
    const sub = mkdtempSync(join(dir, 'wrong-url-'));
    const out = join(sub, 'secrets.csv');
    try {
      const report = await importHubs(csv, { url: other.url, adminToken: ADMIN, out });
      expect(report.stopped).toBe(`${other.url}/v1/admin/hubs:batch answered 404 Not Found with text/html, not the node's JSON: is the URL the node's HTTP API port?`);
      expect(report).toMatchObject({ created: 0, failed: [], notAttempted: [2, 3], unanswered: [], secrets: null });
      expect(readdirSync(sub)).toEqual([]);
    } finally {
      await other.close();
    }
    const again = await importHubs(csv, { url: node.http, adminToken: ADMIN, out });
    expect(again).toMatchObject({ created: 2, stopped: null, secrets: out });
  });

  it('a node that fails mid-way: the secrets issued are kept, the lines sent and those never sent told apart', async () => {
    const flaky = await standIn((hubs, res) => {
      if (flaky.batches.length === 1) json(res, 200, provisioned(hubs));
      else res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway');
    });
    try {
      const file = join(dir, 'flaky.csv');
      writeFileSync(file, ['hubId,homeId', ...Array.from({ length: 2_500 }, (_, i) => `fl-${i},h`)].join('\n'));
      const out = join(dir, 'secrets-flaky.csv');
      const report = await importHubs(file, { url: flaky.url, adminToken: ADMIN, out });
      expect(report.stopped).toMatch(new RegExp(`^${flaky.url}/v1/admin/hubs:batch answered 502 Bad Gateway with text/plain`));
      expect(report).toMatchObject({ created: 1_000, failed: [], secrets: out });
      expect(report.unanswered).toEqual(Array.from({ length: 1_000 }, (_, i) => 1_002 + i));
      expect(report.notAttempted).toEqual(Array.from({ length: 500 }, (_, i) => 2_002 + i));
      expect(secretsOf(out).size).toBe(1_000);
      expect(flaky.batches).toHaveLength(2);
    } finally {
      await flaky.close();
    }
  });
  it('a stop (Ctrl-C) sends no further batch, the one in flight answered; a cancel (a second Ctrl-C) abandons that one: the secrets issued are in --out either way', async () => {
    const stop = new AbortController();
    const graceful = await standIn((hubs, res) => {
      if (graceful.batches.length === 2) stop.abort('interrupted (SIGINT)');
      json(res, 200, provisioned(hubs));
    });
    const sub = mkdtempSync(join(dir, 'stopped-'));
    try {
      const out = join(sub, 'secrets.csv');
      const report = await importHubs(hubsCsv(join(sub, 'hubs.csv'), 'st', 3_500), { url: graceful.url, adminToken: ADMIN, out, stop: stop.signal });
      expect(report).toMatchObject({ created: 2_000, failed: [], unanswered: [], stopped: 'interrupted (SIGINT)', secrets: out });
      expect(report.notAttempted).toEqual(lineRange(2_002, 3_501));
      expect(graceful.batches).toHaveLength(2);
      expect(secretsOf(out).size).toBe(2_000);
      expect(readdirSync(sub).sort()).toEqual(['hubs.csv', 'secrets.csv']);
    } finally {
      await graceful.close();
    }

    const stop2 = new AbortController();
    const cancel = new AbortController();
    const held: ServerResponse[] = [];
    const hanging = await standIn((hubs, res) => {
      if (hanging.batches.length === 1) return json(res, 200, provisioned(hubs));
      // the node does not answer the second batch: the user presses Ctrl-C twice
      held.push(res);
      stop2.abort('interrupted (SIGINT)');
      cancel.abort('interrupted (SIGINT twice)');
    });
    const sub2 = mkdtempSync(join(dir, 'cancelled-'));
    try {
      const out = join(sub2, 'secrets.csv');
      const report = await importHubs(hubsCsv(join(sub2, 'hubs.csv'), 'ca', 2_500), { url: hanging.url, adminToken: ADMIN, out, stop: stop2.signal, cancel: cancel.signal });
      expect(report).toMatchObject({ created: 1_000, failed: [], secrets: out });
      expect(report.stopped).toMatch(/^interrupted \(SIGINT twice\): .*no answer/);
      expect(report.unanswered).toEqual(lineRange(1_002, 2_001));
      expect(report.notAttempted).toEqual(lineRange(2_002, 2_501));
      expect(secretsOf(out).size).toBe(1_000);
      expect(readdirSync(sub2).sort()).toEqual(['hubs.csv', 'secrets.csv']);
    } finally {
      for (const res of held) res.destroy();
      await hanging.close();
    }
  });

  it('the command line on Ctrl-C: says so, waits for the batch in flight, leaves every secret issued in --out, exit 130', async () => {
    let noticed!: () => void;
    const notice = new Promise<void>((resolve) => (noticed = resolve));
    let child: ReturnType<typeof spawn> | undefined;
    const node2 = await standIn((hubs, res) => {
      if (node2.batches.length !== 2) return json(res, 200, provisioned(hubs));
      child!.kill('SIGINT');
      void notice.then(() => json(res, 200, provisioned(hubs)));
    });
    const sub = mkdtempSync(join(dir, 'sigint-'));
    try {
      const out = join(sub, 'secrets.csv');
      child = spawn(process.execPath, [...scriptArgs('src/fleet-cli.ts'), 'import', hubsCsv(join(sub, 'hubs.csv'), 'si', 3_000), '--out', out, '--url', node2.url], { cwd: ROOT, env: { ...process.env, ADMIN_TOKEN: ADMIN } });
      let stderr = '';
      child.stderr!.on('data', (c: Buffer) => {
        stderr += c.toString();
        if (stderr.includes('SIGINT: stopping once the batch in flight is answered')) noticed();
      });
      const stdout = child.stdout!.toArray();
      const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
      expect({ code, signal }).toEqual({ code: 130, signal: null });
      expect(stderr).toContain(`the secrets issued so far go to ${out}`);
      expect(stderr).toContain('stopped: interrupted (SIGINT)');
      expect(Buffer.concat(await stdout).toString()).toContain(`provisioned 2000 hubs, 0 refused, 1000 not attempted (lines 2002-3001); secrets in ${out} (mode 0600)`);
      expect(secretsOf(out).size).toBe(2_000);
      expect(readdirSync(sub).sort()).toEqual(['hubs.csv', 'secrets.csv']);
    } finally {
      child?.kill();
      await node2.close();
    }
  });
});
