import { mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { build } from '../../deploy/build.js';
import { collect, freePort, freshDataDir, ROOT, start, startNode, type Proc } from '../../load/harness/index.js';
import { removeAtExit } from '../../load/harness/exit-hooks.js';
import { rulesWarmedUp } from '../helpers/server-process.js';

/**
 * `npm run build` into a temporary directory, then the compiled node started as the image starts
 * it (`node dist/src/main.js`, no loader flag). Its node_modules holds every installed package but
 * the transpilers and bundlers (tsx, esbuild, typescript): the node must not need them at run time.
 */

const RUN_TIME_ONLY = (name: string) => !['tsx', 'esbuild', '@esbuild', 'typescript', '.bin'].includes(name);
const ADMIN = 'build-test-admin-token-0123456789';
const JWT = 'build-test-jwt-secret-0123456789abcdef';

let dir: string;
let main: string;
let node: Proc;
let http: string;
let admin: string;

/** Resolves on the node's "node ready" line; rejects with its last lines if it exits first. */
async function startCompiled(main: string): Promise<Proc> {
  const [port, adminPort] = [await freePort(), await freePort()];
  http = `http://127.0.0.1:${port}`;
  admin = `http://127.0.0.1:${adminPort}`;
  let ready!: () => void;
  const readyLine = new Promise<void>((resolve) => (ready = resolve));
  const proc = start(process.execPath, [main], {
    env: { NODE_OPTIONS: '', HOST: '127.0.0.1', PORT: String(port), ADMIN_PORT: String(adminPort), DATA_DIR: freshDataDir(), ADMIN_TOKEN: ADMIN, JWT_SECRET: JWT, LOG_LEVEL: 'info' },
    onLine: (line) => line.includes('"node ready"') && ready(),
  });
  await Promise.race([readyLine, proc.exited.then((code) => Promise.reject(new Error(`the compiled node exited with ${code}:\n${proc.tail.join('\n')}`)))]);
  return proc;
}

function filesUnder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

// no time limit: the build shares two cores with other work; a failure rejects instead
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hubtier-build-'));
  removeAtExit(dir);
  mkdirSync(join(dir, 'node_modules'));
  for (const name of readdirSync(join(ROOT, 'node_modules')).filter(RUN_TIME_ONLY)) symlinkSync(join(ROOT, 'node_modules', name), join(dir, 'node_modules', name));
  main = await build(join(dir, 'dist'));
  node = await startCompiled(main);
  await rulesWarmedUp(admin);
}, 0);

afterAll(async () => {
  await node?.stop(Infinity);
}, 0);

describe('the compiled node (npm run build)', () => {
  it('holds JavaScript only: no TypeScript source in the output', () => {
    const files = filesUnder(join(dir, 'dist'));
    expect(files.some((f) => f.endsWith('/src/main.js'))).toBe(true);
    expect(files.filter((f) => f.endsWith('.ts'))).toEqual([]);
  });

  it('runs without tsx or esbuild installed and answers /healthz', async () => {
    expect(readdirSync(join(dir, 'node_modules')).some((n) => n === 'tsx' || n === 'esbuild')).toBe(false);
    const res = await fetch(`${admin}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
  });

  it('serves the prebuilt client bundle at /client.js and the console page with its script', async () => {
    const res = await fetch(`${http}/client.js`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(await res.text()).toBe(readFileSync(join(dir, 'dist/src/api/client.bundle.js'), 'utf8'));
    const page = await fetch(`${http}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toBe(readFileSync(join(ROOT, 'src/api/console.html'), 'utf8'));
    const script = await fetch(`${http}/console.js`);
    expect(script.status).toBe(200);
    expect(await script.text()).toBe(readFileSync(join(ROOT, 'src/api/console.js'), 'utf8'));
  });

  it('serves the API documentation page and the protocol documents it links', async () => {
    const page = await fetch(`${http}/docs`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/swagger/i);
    for (const [path, file] of [['/docs/protocol.md', 'proto/PROTOCOL.md'], ['/docs/asyncapi.yaml', 'proto/asyncapi.yaml']] as const) {
      const res = await fetch(`${http}${path}`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(readFileSync(join(ROOT, file), 'utf8'));
    }
  });

  it('runs rules in its worker threads from the compiled worker', async () => {
    const body = (await (await fetch(`${admin}/readyz`)).json()) as { rules: { completed: number; failed: number; workerErrors: number } };
    expect(body.rules).toMatchObject({ failed: 0, workerErrors: 0 });
    expect(body.rules.completed).toBeGreaterThan(0);
  });

  it('exposes on /metrics the gauge the HPA of deploy/k8s scales on', async () => {
    const hpa = parseAllDocuments(readFileSync(join(ROOT, 'deploy/k8s/autoscaling.yaml'), 'utf8'))
      .map((d) => d.toJS() as { kind: string; spec: { metrics: Array<{ type: string; pods?: { metric: { name: string } } }> } })
      .find((d) => d.kind === 'HorizontalPodAutoscaler')!;
    const name = hpa.spec.metrics.find((m) => m.type === 'Pods')!.pods!.metric.name;
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^# TYPE ${name} gauge$`, 'm'));
    expect(metrics).toMatch(new RegExp(`^${name} 0$`, 'm'));
  });

  it('runs under the benchmark harness as a measured process (startNode with its entry): a collect answers', async () => {
    const measured = await startNode({ entry: main });
    try {
      const reading = await collect(measured);
      expect(reading.heapUsed).toBeGreaterThan(0);
      expect(reading.rss).toBeGreaterThan(reading.heapUsed);
      // Linux splits resident memory into anonymous and file-backed pages (a memory-mapped store's are the latter)
      expect(reading.rssAnon).toBeGreaterThan(0);
      expect(reading.rssFile).toBeGreaterThan(0);
      expect(Math.abs(reading.rssAnon! + reading.rssFile! - reading.rss)).toBeLessThan(0.1 * reading.rss);
      // the committed size of each V8 space, which add up to the committed heap
      expect(reading.spaces!.old_space).toBeGreaterThan(0);
      expect(Object.values(reading.spaces!).reduce((a, b) => a + b, 0)).toBe(reading.heapTotal);
      // the pages V8's spaces hold, within what they commit and within the anonymous RSS
      expect(reading.heapPhysical).toBeGreaterThan(reading.heapUsed / 2);
      expect(reading.heapPhysical).toBeLessThanOrEqual(reading.heapTotal);
      expect(reading.heapPhysical).toBeLessThan(reading.rssAnon!);
    } finally {
      await measured.stop();
    }
  });
});
