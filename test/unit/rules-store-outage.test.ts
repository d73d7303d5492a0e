/**
 * The rules engine while its rule store cannot be reached (Redis restarting): a home with cached
 * rules keeps evaluating with them past their ttl, a home without is counted `store_unavailable`;
 * neither is an actor failure that stops the home, and the lines of it are sampled (10 per 10 s).
 */
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import type { RulesEngineDeps } from '../../src/rules/engine.js';
import { prometheusRuleMetrics } from '../../src/rules/metrics.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { rig, warmPool, type Rig } from './rules-fixtures.js';

const pool = warmPool();
let r: Rig | undefined;
afterEach(async () => {
  await r?.close();
  r = undefined;
});

const START = Date.UTC(2024, 6, 1, 10);

type SupervisionDeps = NonNullable<RulesEngineDeps['supervision']>;

const PRESS = validateRuleSpec({
  name: 'Press',
  triggers: [{ type: 'event', hub: 'home1-hub', device: 'btn', event: 'press' }],
  actions: [{ type: 'command', hub: 'home1-hub', device: 'chime', method: 'ring' }],
  limit: { maxRuns: 1_000, windowMs: 60_000 },
});

/** What ioredis throws for a command while its connection is down (offline queue off). */
const unreachable = (): Error => new Error("Stream isn't writeable and enableOfflineQueue options is false");

/** A logger whose lines (warn and above) are kept, parsed. */
function capturedLog(): { log: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('warn', {}, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

/** Makes every read of the store fail as Redis away does while `down.on`. */
function breakStore(rr: Rig, down: { on: boolean }): void {
  const { store } = rr;
  const homeVersion = store.homeVersion.bind(store);
  const listRules = store.listRules.bind(store);
  const getSettings = store.getSettings.bind(store);
  store.homeVersion = (homeId) => (down.on ? Promise.reject(unreachable()) : homeVersion(homeId));
  store.listRules = (homeId) => (down.on ? Promise.reject(unreachable()) : listRules(homeId));
  store.getSettings = (homeId) => (down.on ? Promise.reject(unreachable()) : getSettings(homeId));
}

describe('rules while the rule store is unreachable', () => {
  it('a home with cached rules keeps evaluating with them past the ttl: no actor failure, no drop, one sampled line', async () => {
    const registry = new Registry();
    const failures: string[] = [];
    const { log, lines } = capturedLog();
    const supervision: SupervisionDeps = { supervision: { maxFailures: 2, withinMs: 60_000 }, onFailure: (address) => void failures.push(address) };
    r = rig(pool(), START, { log, cacheTtlMs: 1_000, metrics: prometheusRuleMetrics(registry), supervision });
    await r.store.createRule('home1', PRESS);
    r.hubs.event('home1-hub', 'btn', 'press');
    await r.settle();
    expect(r.hubs.commands).toHaveLength(1);
    const down = { on: true };
    breakStore(r, down);
    // each event past the ttl (and past the retry wait) asks the store again and is refused
    for (let n = 0; n < 30; n++) {
      r.advance(1_500);
      r.hubs.event('home1-hub', 'btn', 'press');
      await r.settle();
    }
    expect(r.hubs.commands).toHaveLength(31);
    expect(failures).toEqual([]);
    const text = await registry.metrics();
    expect(metricValue(text, 'tier_rule_dropped_total{reason="home_stopped"}')).toBe(0);
    expect(metricValue(text, 'tier_rule_dropped_total{reason="store_unavailable"}')).toBe(0);
    const cached = lines.filter((l) => l.msg === 'rules: rule store unreachable; the home evaluates with its cached rules');
    expect(cached.length).toBeGreaterThan(0);
    expect(cached.length).toBeLessThanOrEqual(10);
    expect(lines.filter((l) => l.msg === 'actor message failed' || l.msg === 'rules: home stopped by its supervisor')).toEqual([]);
    // back: a rule changed meanwhile is read at the next check
    down.on = false;
    const rule = (await r.store.listRules('home1'))[0]!;
    await r.store.setRuleEnabled('home1', rule.id, false);
    r.advance(1_500);
    r.hubs.event('home1-hub', 'btn', 'press');
    await r.settle();
    expect(r.hubs.commands).toHaveLength(31);
  });

  it('a home without cached rules counts its events store_unavailable, with sampled lines, and is not stopped; they evaluate once the store is back', async () => {
    const registry = new Registry();
    const failures: string[] = [];
    const { log, lines } = capturedLog();
    const supervision: SupervisionDeps = { supervision: { maxFailures: 2, withinMs: 60_000 }, onFailure: (address) => void failures.push(address) };
    r = rig(pool(), START, { log, metrics: prometheusRuleMetrics(registry), supervision });
    await r.store.createRule('home1', PRESS);
    const down = { on: true };
    breakStore(r, down);
    for (let n = 0; n < 30; n++) r.hubs.event('home1-hub', 'btn', 'press');
    const cron = r.engine.fireScheduled('home1', 'any-rule', START);
    await r.settle();
    expect(await cron).toBe('error');
    expect(failures).toEqual([]);
    const text = await registry.metrics();
    expect(metricValue(text, 'tier_rule_dropped_total{reason="store_unavailable"}')).toBe(31);
    expect(metricValue(text, 'tier_rule_dropped_total{reason="home_stopped"}')).toBe(0);
    expect(lines.filter((l) => String(l.msg).startsWith('rules: rule store unreachable and no rules cached'))).toHaveLength(10);
    expect(lines.filter((l) => l.level === 50)).toEqual([]);
    down.on = false;
    r.hubs.event('home1-hub', 'btn', 'press');
    await r.settle();
    expect(r.hubs.commands).toHaveLength(1);
  });

  it('a device-state store that is away fails each evaluation with a sampled warn, not one per event', async () => {
    const { log, lines } = capturedLog();
    r = rig(pool(), START, { log, stateOf: () => Promise.reject(unreachable()) });
    // a condition on a device: its state is read for each evaluation
    await r.store.createRule('home1', validateRuleSpec({ ...PRESS, devices: { lux: { hub: 'home1-hub', device: 'lux' } }, conditions: ['dev.lux.lux < 30'] }));
    for (let n = 0; n < 30; n++) r.hubs.event('home1-hub', 'btn', 'press');
    await r.settle();
    expect(lines.filter((l) => l.msg === 'rules: evaluation failed')).toHaveLength(10);
  });

  it('an action failing because a backend is away is logged 10 times per 10 s, not once per run', async () => {
    const { log, lines } = capturedLog();
    r = rig(pool(), START, { log, setDesired: () => Promise.reject(unreachable()) });
    await r.store.createRule('home1', validateRuleSpec({ ...PRESS, actions: [{ type: 'desired', hub: 'home1-hub', device: 'fan', desired: { on: true } }] }));
    for (let n = 0; n < 30; n++) r.hubs.event('home1-hub', 'btn', 'press');
    await r.settle();
    expect(lines.filter((l) => l.msg === 'rules: action failed')).toHaveLength(10);
    // the other actions' failures are still logged one by one
    r.hubs.offline.add('home1-hub');
    await r.store.createRule('home1', PRESS);
    for (let n = 0; n < 3; n++) r.hubs.event('home1-hub', 'btn', 'press');
    await r.settle();
    expect(lines.filter((l) => l.msg === 'rules: action failed' && (l.err as { code?: string }).code === 'hub_offline')).toHaveLength(3);
  });

  it('a failure that is not an outage still goes to the supervisor', async () => {
    const failures: string[] = [];
    const supervision: SupervisionDeps = { supervision: { maxFailures: 10, withinMs: 60_000 }, onFailure: (address) => void failures.push(address) };
    r = rig(pool(), START, { supervision });
    await r.store.createRule('home1', PRESS);
    r.store.listRules = () => Promise.reject(new TypeError('rules is not iterable'));
    r.hubs.event('home1-hub', 'btn', 'press');
    await r.settle();
    expect(failures).toEqual(['rules:home:home1']);
  });
});
