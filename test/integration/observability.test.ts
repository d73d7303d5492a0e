import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { HubClient } from '../../load/wire/hub-client.js';
import { findOnPath, ROOT, startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/** Debian's `prometheus` package; .ci/run installs it. Without it the promtool checks are skipped, saying so. */
const promtool = findOnPath('promtool', process.env.PATH ?? '');
if (!promtool) console.warn('promtool not found (apt-get install prometheus): the promtool checks of test/integration/observability.test.ts are skipped');

const ALERTS = join(ROOT, 'deploy/prometheus/alerts.yaml');
const DASHBOARD = join(ROOT, 'deploy/grafana/hubtier-dashboard.json');
const RUNBOOKS = join(ROOT, 'docs/runbooks.md');

/**
 * Metric names in PromQL: identifiers of ours or of the Node defaults, followed by a selector, a
 * range, a call or a space (or the end). Histogram series map to the histogram's name.
 */
function metricNames(expr: string): string[] {
  const out = new Set<string>();
  for (const m of expr.matchAll(/\b((?:tier|nodejs|process)_[a-zA-Z0-9_]*)(?=[{[(\s]|$)/g)) out.add(m[1]!);
  return [...out];
}

/** `# TYPE name kind` lines of an exposition: every declared metric, whether it has samples yet or not. */
function declared(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

/** The series a name in an expression refers to exists: itself, or the histogram it is a series of. */
function exists(name: string, metrics: Map<string, string>): boolean {
  if (metrics.has(name)) return true;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base !== name && metrics.get(base) === 'histogram';
}

/** The value of the first sample of `name` whose labels include `labels`; undefined when none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

function expressions(): { alerts: string[]; dashboard: string[]; runbookUrls: string[] } {
  const yaml = readFileSync(ALERTS, 'utf8');
  // the rules file is checked by promtool; here only its expressions and runbook links are read
  const alerts: string[] = [];
  const lines = yaml.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)expr: ?(\|)?(.*)$/.exec(lines[i]!);
    if (!m) continue;
    if (!m[2]) {
      alerts.push(m[3]!);
      continue;
    }
    const body: string[] = [];
    while (i + 1 < lines.length && (lines[i + 1]!.trim() === '' || lines[i + 1]!.search(/\S/) > m[1]!.length)) body.push(lines[++i]!);
    alerts.push(body.join('\n'));
  }
  const runbookUrls = [...yaml.matchAll(/runbook_url: (\S+)/g)].map((m) => m[1]!);
  const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Array<{ targets?: Array<{ expr: string }> }>; templating: { list: Array<{ definition?: string }> } };
  const dashboard = [...dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)), ...dash.templating.list.flatMap((v) => (v.definition ? [v.definition] : []))];
  return { alerts, dashboard, runbookUrls };
}

describe('alert rules, dashboard and runbooks (files)', () => {
  it.skipIf(!promtool)('promtool check rules accepts deploy/prometheus/alerts.yaml', () => {
    const r = spawnSync(promtool!, ['check', 'rules', ALERTS], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.status).toBe(0);
  });

  it.skipIf(!promtool)('promtool test rules: the alerts fire on the faults deploy/prometheus/alerts.test.yaml feeds them, and not at rest', () => {
    const r = spawnSync(promtool!, ['test', 'rules', join(ROOT, 'deploy/prometheus/alerts.test.yaml')], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toMatch(/SUCCESS/);
    expect(r.status).toBe(0);
  });

  it('every alert links a runbook section that exists, and every section has an alert', () => {
    const { runbookUrls } = expressions();
    const alertNames = [...readFileSync(ALERTS, 'utf8').matchAll(/- alert: (\w+)/g)].map((m) => m[1]!);
    expect(runbookUrls).toHaveLength(alertNames.length);
    const sections = [...readFileSync(RUNBOOKS, 'utf8').matchAll(/^## (\w+)$/gm)].map((m) => m[1]!);
    // GitHub's anchors: the heading in lower case
    expect(runbookUrls).toEqual(alertNames.map((a) => `docs/runbooks.md#${a.toLowerCase()}`));
    expect(sections.sort()).toEqual([...alertNames].sort());
  });

  it('the tokenizer finds the metrics of an expression', () => {
    expect(metricNames('histogram_quantile(0.99, sum by (le) (rate(tier_command_duration_seconds_bucket{outcome="ok"}[5m]))) > 1')).toEqual(['tier_command_duration_seconds_bucket']);
    expect(metricNames('process_open_fds / process_max_fds > 0.85')).toEqual(['process_open_fds', 'process_max_fds']);
    expect(metricNames('sum(tier_hub_sessions offset 5m)')).toEqual(['tier_hub_sessions']);
  });
});

/**
 * Two cluster nodes on one NATS and one Redis: traffic through both, then their /metrics are what
 * Prometheus would scrape (promtool check metrics), they hold every metric the dashboard and alerts
 * use, and a rule's run statistics read the same through either node.
 */
describe('two cluster nodes: metrics an SRE alerts on, and rule statistics every node agrees on (real processes)', { timeout: 60_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let a: ServerProcess;
  let b: ServerProcess;
  const clients: HubClient[] = [];
  const sockets: WebSocket[] = [];
  const shared = { ADMIN_TOKEN: 'observability-admin-token-0123456789', JWT_SECRET: 'observability-jwt-secret-0123456789abcdef' };
  const token = shared.ADMIN_TOKEN;
  const home = 'home-observed';
  const metricsOf = async (node: ServerProcess) => (await fetch(`${node.adminUrl}/metrics`)).text();

  beforeAll(async () => {
    [nats, redis] = await Promise.all([startNats(), startRedis()]);
    const env = { ...shared, NATS_URL: nats.url, REDIS_URL: redis.url, TIER_REDIS_PREFIX: uniquePrefix() };
    [a, b] = await Promise.all([startServerProcess({ ...env, NODE_ID: 'node-a' }), startServerProcess({ ...env, NODE_ID: 'node-b' })]);
  }, 60_000);

  afterAll(async () => {
    for (const s of sockets) s.terminate();
    await Promise.allSettled(clients.map((c) => c.terminate()));
    await Promise.allSettled([a?.stop(), b?.stop()]);
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
  });

  it('a rule run on one node shows the same statistics through the other', async ({ signal }) => {
    const res = await api(a.httpUrl, 'POST', '/v1/admin/hubs', token, { hubId: 'obs-hub', homeId: home });
    expect(res.status).toBe(201);
    const hub = new HubClient({ url: a.wsUrl, hubId: 'obs-hub', secret: res.body.secret });
    clients.push(hub);
    await hub.connect();
    await hub.devices({ f: true, j: [{ d: 'motion', k: 'sensor.motion' }, { d: 'light', k: 'light' }] });
    await hub.report({ motion: { motion: false } });

    const created = await api(b.httpUrl, 'POST', `/v1/homes/${home}/rules`, token, {
      name: 'Light on motion',
      triggers: [{ type: 'state', hub: 'obs-hub', device: 'motion', attr: 'motion', to: true }],
      actions: [{ type: 'command', hub: 'obs-hub', device: 'light', set: { on: true } }],
    });
    expect(created.status).toBe(201);
    const ruleId = created.body.rule.id as string;
    const statsVia = async (node: ServerProcess) => (await api(node.httpUrl, 'GET', `/v1/homes/${home}/rules/${ruleId}`, token)).body.rule.status.stats;

    // the hub is on node a: its reports run the rule there; motion goes true twice
    for (const motion of [true, false, true]) await hub.report({ motion: { motion } });
    for (;;) {
      const s = await statsVia(a);
      if (s.actionsRun >= 2) break;
      if (signal.aborted) throw new Error(`rule did not run twice: ${JSON.stringify(s)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // node a sent its counts before answering: node b reads the same totals from the store
    const { evalUs: _a, ...throughA } = await statsVia(a);
    const { evalUs: _b, ...throughB } = await statsVia(b);
    expect(throughA).toMatchObject({ triggered: 2, matched: 2, actionsRun: 2, errors: 0 });
    expect(throughB).toEqual(throughA);
    expect(throughB.lastRunAt).toBeTypeOf('number');
  });

  it('serves metrics that promtool accepts, with every metric the dashboard and alerts use, counting what happened', async () => {
    // a command through each node: local on a (the hub is there), remote on b (one bus hop)
    for (const node of [a, b]) expect((await api(node.httpUrl, 'POST', '/v1/hubs/obs-hub/devices/light/commands', token, { set: { on: false } })).status).toBe(200);
    // an app socket on b subscribed to the home
    const app = new WebSocket(`${b.wsUrl}/app/v1?token=${token}`);
    sockets.push(app);
    await new Promise<void>((resolve, reject) => {
      app.once('open', () => resolve());
      app.once('error', reject);
    });
    const answered = new Promise((resolve) => app.on('message', (d: Buffer) => (JSON.parse(d.toString()).id === 1 ? resolve(undefined) : undefined)));
    app.send(JSON.stringify({ op: 'sub', home, id: 1 }));
    await answered;

    const [textA, textB] = await Promise.all([metricsOf(a), metricsOf(b)]);
    if (promtool) {
      for (const text of [textA, textB]) {
        const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
        expect(r.stdout + r.stderr).toBe('');
        expect(r.status).toBe(0);
      }
    }

    const metrics = new Map([...declared(textA), ...declared(textB)]);
    const { alerts, dashboard } = expressions();
    const used = [...new Set([...alerts, ...dashboard].flatMap(metricNames))];
    expect(used.length).toBeGreaterThan(20);
    expect(used.filter((n) => !exists(n, metrics))).toEqual([]);

    // and they count what the test did
    expect(sample(textA, 'tier_command_duration_seconds_count', { path: 'local', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sample(textB, 'tier_command_duration_seconds_count', { path: 'remote', outcome: 'ok' })).toBe(1);
    expect(sample(textB, 'tier_bus_request_duration_seconds_count', { outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sample(textA, 'tier_hub_connects_total', { result: 'accepted' })).toBe(1);
    expect(sample(textA, 'tier_hub_frames_in_total', { type: 'report' })).toBeGreaterThanOrEqual(4);
    expect(sample(textA, 'tier_hub_frames_out_total', { type: 'command' })).toBeGreaterThanOrEqual(3);
    expect(sample(textA, 'tier_sessions', { kind: 'hub' })).toBe(1);
    expect(sample(textB, 'tier_sessions', { kind: 'app' })).toBe(1);
    expect(sample(textB, 'tier_app_subscriptions')).toBe(1);
    // the one hub's device cache: in use or, idle past TIER_SHADOW_PACK_MS, packed
    expect([0, 1]).toContain(sample(textA, 'tier_hub_device_caches_unpacked'));
    expect(sample(textB, 'tier_app_frames_in_total', { type: 'sub' })).toBe(1);
    expect(sample(textB, 'tier_app_frames_out_total', { type: 'ok' })).toBe(1);
    expect(sample(textB, 'tier_http_requests_total', { method: 'POST', route: '/v1/hubs/:hubId/devices/:deviceId/commands', status: '200' })).toBe(1);
    expect(sample(textA, 'tier_redis_call_duration_seconds_count', { client: 'control' })).toBeGreaterThanOrEqual(1);
    expect(sample(textA, 'tier_store_batch_size_count', { store: 'shadows' })).toBeGreaterThanOrEqual(1);
    expect(sample(textA, 'tier_draining')).toBe(0);
    // no series carries the hub's or the home's id
    expect(textA + textB).not.toMatch(/obs-hub|home-observed/);
  });
});
