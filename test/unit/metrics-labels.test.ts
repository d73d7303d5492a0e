import { describe, expect, it } from 'vitest';
import { BOUNDED_LABELS, NodeMetrics } from '../../src/admin/metrics.js';
import { prometheusRuleMetrics } from '../../src/rules/metrics.js';

const HUB = 'hub-7f3a9c';
const HOME = 'home-42b1';

/** A node's registry with every series family of ours fed ids the way the hot paths see them. */
async function fed(): Promise<NodeMetrics> {
  const m = new NodeMetrics(() => 1);
  const rules = prometheusRuleMetrics(m.registry);
  m.attach({ hubs: { has: (id) => id === HUB }, admission: { full: 1, handshakes: 2, rate: 3, late: 4, memory: 5 }, memory: () => ({ limit: 1 << 30, unreclaimable: 1 << 29, heapUsed: 1 << 27, heapLimit: 1 << 29 }), heapReleases: { count: 2, seconds: 0.25 }, answers: { bytes: 3_000_000, refused: 9 }, draining: () => false, events: { historyFailures: 6, staleEvents: 7 }, push: { stats: async () => ({ waiting: 1, delayed: 0, active: 0, delivered: 4, failed: 1 }) } });
  m.frameIn(4);
  m.frameOut(7);
  m.frameIn(200); // an unknown type is `other`, not a new label value
  m.commandDone('ok');
  m.commandFinished(HUB, 'ok', 0.01);
  m.commandFinished(`${HUB}-elsewhere`, 'command_timeout', 5);
  m.hubConnected();
  m.upgradeRefused('unauthorized');
  m.badFrame('malformed_frame');
  m.sessionClosed('1000');
  m.sessionClosed('3777'); // a code the hub chose: `other`, not a new label value
  m.appConnected();
  m.subscribed(1);
  m.appClosed(true);
  m.appFrameIn('cmd');
  m.appFrameIn(HUB); // not an op of the protocol: `unknown`, not a new label value
  m.appFramesOut('evt', 3);
  m.route('GET', '/v1/hubs/:hubId')(200, 0.001);
  m.bus.request('timeout', 2);
  m.redis('control').done(0.001, false);
  m.store('shadows').flushed(12, 0.004);
  m.actorFailures.inc({ message: 'frame' });
  rules.outcome('matched');
  rules.action('command', 'ok');
  rules.dropped('queue_full');
  rules.cron('fired');
  return m;
}

describe('metrics: bounded label sets', () => {
  it('every registered metric uses only label names from the allowed list (no hub, home, device, rule or user ids)', async () => {
    const m = await fed();
    const names = new Map<string, string[]>();
    for (const metric of m.registry.getMetricsAsArray()) {
      const declared = (metric as unknown as { labelNames?: readonly string[] }).labelNames ?? [];
      names.set((metric as unknown as { name: string }).name, [...declared]);
    }
    for (const family of await m.registry.getMetricsAsJSON()) {
      for (const v of family.values) names.set(family.name, [...new Set([...(names.get(family.name) ?? []), ...Object.keys(v.labels)])]);
    }
    expect(names.size).toBeGreaterThan(40);
    const unbounded = [...names].flatMap(([name, labels]) => labels.filter((l) => l !== 'le' && l !== 'quantile' && !BOUNDED_LABELS.has(l)).map((l) => `${name}{${l}}`));
    expect(unbounded).toEqual([]);
  });

  it('no label value carries an id the hot paths were given', async () => {
    const text = await (await fed()).registry.metrics();
    expect(text).not.toContain(HUB);
    expect(text).not.toContain(HOME);
    expect(text).toContain('tier_command_duration_seconds_count{path="local",outcome="ok"} 1');
    expect(text).toContain('tier_command_duration_seconds_count{path="remote",outcome="command_timeout"} 1');
    expect(text).toContain('tier_http_requests_total{method="GET",route="/v1/hubs/:hubId",status="200"} 1');
    expect(text).toContain('tier_hub_frames_in_total{type="other"} 1');
    expect(text).toContain('tier_app_frames_in_total{type="cmd"} 1');
    expect(text).toContain('tier_app_frames_in_total{type="unknown"} 1');
    expect(text).toContain('tier_hub_sessions_closed_total{code="1000"} 1');
    expect(text).toContain('tier_hub_sessions_closed_total{code="other"} 1');
    // in no label (a gauge's value may hold those digits: node's heap sizes once did)
    expect(text).not.toMatch(/="[^"]*3777[^"]*"/);
    expect(text).toContain('tier_app_frames_out_total{type="evt"} 3');
    expect(text).toContain('tier_hub_admission_refusals_total{reason="rate"} 3');
    expect(text).toContain('tier_hub_admission_refusals_total{reason="memory"} 5');
    expect(text).toContain('tier_memory_unreclaimable_bytes 536870912');
    expect(text).toContain('tier_memory_limit_bytes 1073741824');
    expect(text).toContain('tier_memory_collections_total 2');
    expect(text).toContain('tier_memory_collection_seconds_total 0.25');
    expect(text).toContain('tier_http_pending_answer_bytes 3000000');
    expect(text).toContain('tier_http_answers_refused_total 9');
    expect(text).toContain('tier_push_notifications_total{outcome="failed"} 1');
    expect(text).toContain('tier_events_not_in_history_total{outcome="unpositioned"} 6');
    expect(text).toContain('tier_events_not_in_history_total{outcome="stale"} 7');
  });

  it('drops the default Node gauges named like counters (promtool refuses them)', async () => {
    const text = await new NodeMetrics(() => 0).registry.metrics();
    expect(text).not.toMatch(/^# TYPE \S+_total gauge$/m);
    expect(text).toMatch(/^# TYPE nodejs_active_handles gauge$/m);
  });
});

describe('metrics: clock skew against Redis', () => {
  it('tier_clock_skew_seconds shows the node minus Redis, keeps its last value while Redis is away, and is 0 without Redis', async () => {
    const m = new NodeMetrics(() => 0);
    const gauge = async () => (await m.registry.getSingleMetric('tier_clock_skew_seconds')!.get()).values[0]?.value;
    expect(await gauge()).toBe(0);
    let reading: () => Promise<number> = async () => 120.5;
    m.attach({ clockSkew: () => reading() });
    expect(await gauge()).toBe(120.5);
    reading = async () => Promise.reject(new Error('redis away'));
    expect(await gauge()).toBe(120.5);
  });
});

describe('series an alert compares', () => {
  it('tier_hub_connects_total has both results at 0 from the start: HubtierRefusalStorm on a node that never accepted a hub matched nothing', async () => {
    const text = await new NodeMetrics(() => 0).registry.metrics();
    expect(text).toContain('tier_hub_connects_total{result="accepted"} 0');
    expect(text).toContain('tier_hub_connects_total{result="refused"} 0');
  });
});
