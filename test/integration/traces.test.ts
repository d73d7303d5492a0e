import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../../load/wire/hub-client.js';
import { startNats, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { AppSocket } from '../helpers/app-socket.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/** A span as an OTLP/HTTP JSON export carries it, with the node (`service.instance.id`) that sent it. */
interface ReceivedSpan {
  node: string;
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  attributes: Record<string, unknown>;
}

type OtlpValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean };
type OtlpAttrs = Array<{ key: string; value: OtlpValue }>;
interface OtlpBody {
  resourceSpans?: Array<{ resource?: { attributes?: OtlpAttrs }; scopeSpans?: Array<{ spans?: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string; attributes?: OtlpAttrs }> }> }>;
}

function attrs(list: OtlpAttrs | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of list ?? []) out[key] = value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : value.boolValue);
  return out;
}

/** The local OTLP receiver: collects every span POSTed to /v1/traces (JSON). */
function startReceiver(): Promise<{ server: Server; url: string; spans: ReceivedSpan[]; paths: string[] }> {
  const spans: ReceivedSpan[] = [];
  const paths: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      paths.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
      const body = JSON.parse(Buffer.concat(chunks).toString()) as OtlpBody;
      for (const rs of body.resourceSpans ?? []) {
        const resource = attrs(rs.resource?.attributes);
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            spans.push({ node: String(resource['service.instance.id']), service: String(resource['service.name']), traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? '', name: s.name, attributes: attrs(s.attributes) });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, paths })));
}

/** Waits until `found` finds something (spans are exported every 100 ms); no deadline but the test's. */
async function until<T>(signal: AbortSignal, found: () => T | undefined, spans: ReceivedSpan[]): Promise<T> {
  for (;;) {
    const t = found();
    if (t !== undefined) return t;
    if (signal.aborted) throw new Error(`not found; spans so far: ${JSON.stringify(spans.map((s) => [s.name, s.node, s.traceId, s.spanId, s.parentSpanId, s.attributes]))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('traces: one trace across two nodes for a cross-node command (own NATS, Redis and OTLP receiver)', { timeout: 60_000 }, () => {
  let nats: Backend;
  let redis: Backend;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let a: ServerProcess;
  let b: ServerProcess;
  let hub: HubClient | undefined;
  const shared = { ADMIN_TOKEN: 'traces-cluster-admin-token-0123456789', JWT_SECRET: 'traces-cluster-jwt-secret-0123456789abcdef' };

  beforeAll(async () => {
    [nats, redis, receiver] = await Promise.all([startNats(), startRedis(), startReceiver()]);
    const env = { ...shared, NATS_URL: nats.url, REDIS_URL: redis.url, TIER_REDIS_PREFIX: uniquePrefix(), OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '100' };
    [a, b] = await Promise.all([startServerProcess({ ...env, NODE_ID: 'trace-a' }), startServerProcess({ ...env, NODE_ID: 'trace-b' })]);
  }, 60_000);

  afterAll(async () => {
    await hub?.terminate();
    await Promise.allSettled([a?.stop(), b?.stop()]);
    await Promise.allSettled([nats?.stop(), redis?.stop()]);
    receiver?.server.close();
  });

  it('sent to node A with a traceparent for a hub on node B: HTTP and bus spans on A, the actor step and hub command on B, one trace', async ({ signal }) => {
    expect(a.logs).toContainEqual(expect.objectContaining({ msg: 'tracing on', ratio: 1 }));
    const res = await api(a.httpUrl, 'POST', '/v1/admin/hubs', a.adminToken, { hubId: 'tr-x-1', homeId: 'home-tr' });
    expect(res.status).toBe(201);
    hub = new HubClient({ url: b.wsUrl, hubId: 'tr-x-1', secret: res.body.secret as string });
    await hub.connect();

    // the ok outcome line is written at debug
    const level = await fetch(`${b.adminUrl}/debug/log-level`, { method: 'PUT', headers: { authorization: `Bearer ${b.adminToken}` }, body: JSON.stringify({ level: 'debug' }) });
    expect(level.status).toBe(200);
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const callerSpan = 'b7ad6b7169203331';
    const sent = await fetch(`${a.httpUrl}/v1/hubs/tr-x-1/devices/t1/commands`, {
      method: 'POST',
      headers: { authorization: `Bearer ${a.adminToken}`, 'content-type': 'application/json', traceparent: `00-${traceId}-${callerSpan}-01`, 'x-request-id': 'trace-7' },
      body: JSON.stringify({ set: { on: true } }),
    });
    expect(sent.status).toBe(200);

    // the batch processors export every 100 ms: wait for the three spans, no deadline but the test's
    const named = (name: string) => receiver.spans.find((s) => s.traceId === traceId && s.name === name);
    while (!(named('HTTP POST /v1/hubs/:hubId/devices/:deviceId/commands') && named('bus request') && named('actor step') && named('hub command'))) {
      if (signal.aborted) throw new Error(`spans so far: ${JSON.stringify(receiver.spans)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const http = named('HTTP POST /v1/hubs/:hubId/devices/:deviceId/commands')!;
    const bus = named('bus request')!;
    const step = named('actor step')!;
    const command = named('hub command')!;
    expect(http).toMatchObject({ node: 'trace-a', service: 'hubtier', parentSpanId: callerSpan, attributes: { 'http.request.method': 'POST', 'http.route': '/v1/hubs/:hubId/devices/:deviceId/commands', 'http.response.status_code': 200, 'hubtier.request_id': 'trace-7' } });
    expect(bus).toMatchObject({ node: 'trace-a', parentSpanId: http.spanId, attributes: { 'hubtier.hub_id': 'tr-x-1', 'hubtier.device_id': 't1' } });
    // API call → bus hop → the hub actor's step taking the command from its mailbox → hub round trip
    expect(step).toMatchObject({ node: 'trace-b', parentSpanId: bus.spanId, attributes: { 'hubtier.actor': 'hub', 'hubtier.message': 'command', 'hubtier.hub_id': 'tr-x-1' } });
    expect(step.attributes['hubtier.mailbox_wait_us']).toBeTypeOf('number');
    expect(command).toMatchObject({ node: 'trace-b', parentSpanId: step.spanId, attributes: { 'hubtier.hub_id': 'tr-x-1', 'hubtier.device_id': 't1', 'hubtier.method': 'set', 'hubtier.outcome': 'ok' } });
    expect(new Set(receiver.spans.filter((s) => s.traceId === traceId).map((s) => s.node))).toEqual(new Set(['trace-a', 'trace-b']));
    // B's outcome line names the trace
    expect(b.logs.find((l) => l.msg === 'command outcome' && l.requestId === 'trace-7')).toMatchObject({ traceId, hubId: 'tr-x-1' });
    // and A's access line, written while the HTTP span was active, names it
    expect(a.logs.find((l) => l.msg === 'http request' && l.requestId === 'trace-7')).toMatchObject({ traceId, spanId: http.spanId });
    expect(receiver.paths[0]).toMatch(/^POST \/v1\/traces application\/json/);
  });

  it("an app socket command with the app's traceparent: the app command span on A is its child, the actor step and hub command on B in the same trace", async ({ signal }) => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const appSpan = '00f067aa0ba902b7';
    const app = new AppSocket(`${a.wsUrl}/app/v1?token=${a.adminToken}`);
    await app.opened();
    const reply = await app.request({ op: 'cmd', hub: 'tr-x-1', device: 't1', set: { on: false }, traceparent: `00-${traceId}-${appSpan}-01` });
    expect(reply).toMatchObject({ op: 'ok' });
    app.close();

    const named = (name: string) => receiver.spans.find((s) => s.traceId === traceId && s.name === name);
    while (!(named('app command') && named('bus request') && named('actor step') && named('hub command'))) {
      if (signal.aborted) throw new Error(`spans so far: ${JSON.stringify(receiver.spans)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const cmd = named('app command')!;
    expect(cmd).toMatchObject({ node: 'trace-a', parentSpanId: appSpan, attributes: { 'hubtier.hub_id': 'tr-x-1', 'hubtier.device_id': 't1' } });
    expect(named('bus request')).toMatchObject({ node: 'trace-a', parentSpanId: cmd.spanId });
    expect(named('actor step')).toMatchObject({ node: 'trace-b', parentSpanId: named('bus request')!.spanId, attributes: { 'hubtier.message': 'command' } });
    expect(named('hub command')).toMatchObject({ node: 'trace-b', parentSpanId: named('actor step')!.spanId, attributes: { 'hubtier.outcome': 'ok' } });
  });

  it("a report that fires a rule: one trace from the hub actor's step through the rule evaluation and run to the push delivery", async ({ signal }) => {
    await hub!.report({ t1: { on: false } });
    const created = await api(a.httpUrl, 'POST', '/v1/homes/home-tr/rules', a.adminToken, {
      name: 'Tell when on',
      triggers: [{ type: 'state', hub: 'tr-x-1', device: 't1', attr: 'on', to: true }],
      actions: [{ type: 'notify', title: 'on', body: 't1 is on' }],
    });
    expect(created.status).toBe(201);
    const ruleId = created.body.rule.id as string;
    // the rule workers must have loaded it before the report that should fire it
    for (;;) {
      const test = await api(a.httpUrl, 'POST', `/v1/homes/home-tr/rules/${ruleId}/test`, a.adminToken);
      if (test.status === 200) break;
      if (signal.aborted) throw new Error(`dry run still failing: ${JSON.stringify(test.body)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await hub!.report({ t1: { on: true } });

    const spans = receiver.spans;
    const push = await until(signal, () => spans.find((s) => s.name === 'push delivery' && s.attributes['hubtier.home_id'] === 'home-tr'), spans);
    const inTrace = (name: string) => spans.find((s) => s.traceId === push.traceId && s.name === name);
    const [step, evaluation, run] = await until(signal, () => {
      const found = [inTrace('actor step'), inTrace('rule evaluation'), inTrace('rule run')];
      return found.every((s) => s !== undefined) ? (found as ReceivedSpan[]) : undefined;
    }, spans);
    // the hub is on B: the report's step there is the root; the rest hang from it in one trace
    expect(step).toMatchObject({ node: 'trace-b', parentSpanId: '', attributes: { 'hubtier.actor': 'hub', 'hubtier.message': 'report', 'hubtier.hub_id': 'tr-x-1', 'hubtier.home_id': 'home-tr' } });
    expect(evaluation).toMatchObject({ node: 'trace-b', parentSpanId: step!.spanId, attributes: { 'hubtier.home_id': 'home-tr', 'hubtier.rules': 1, 'hubtier.matched': 1 } });
    expect(run).toMatchObject({ node: 'trace-b', parentSpanId: evaluation!.spanId, attributes: { 'hubtier.rule_id': ruleId, 'hubtier.actions': 1 } });
    // the push job carried the run's traceparent to whichever node's worker delivered it
    expect(push).toMatchObject({ parentSpanId: run!.spanId, attributes: { 'hubtier.attempt': 1 } });
    expect(['trace-a', 'trace-b']).toContain(push.node);
    // the sender's line, written while the delivery's span was active, names it
    const sent = await until(signal, () => [...a.logs, ...b.logs].find((l) => l.msg === 'push notification (no push service configured: logged)' && l.homeId === 'home-tr'), spans);
    expect(sent).toMatchObject({ traceId: push.traceId, spanId: push.spanId });
  });
});
