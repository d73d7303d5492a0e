/**
 * `npm run fleet -- import FILE`: a CSV and a JSON-lines file provisioned through a running node
 * (in-process), each secret written once to a new file only the user can read and good for a
 * handshake; unreadable lines and refused hubs reported with their line numbers; the command line
 * refuses an existing output file.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../../load/wire/hub-client.js';
import { importHubs } from '../../src/fleet-import.js';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';
import { api } from '../helpers/server-process.js';

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
    const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/fleet-cli.ts', ...args], { cwd: ROOT, env: { ...process.env, ADMIN_TOKEN: ADMIN } }).then(
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
  });
});
