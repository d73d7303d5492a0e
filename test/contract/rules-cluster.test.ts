/**
 * Automation across nodes on one Redis: rule changes made through one node reach the watch
 * listeners of every node (also after the subscriber lost its connection), and cron schedulers
 * on two nodes sharing RedisLease + RedisRuleStore fire each instant exactly once (the Redis
 * variant of test/unit/rules-scheduler.test.ts).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectRedis, RedisKeys } from '../../src/ports/redis.js';
import { createLogger } from '../../src/log/logger.js';
import { RedisLease } from '../../src/ports/lease/lease-redis.js';
import { CLOCK_SLACK_MS, type RuleStoreChange } from '../../src/ports/rule-store/rule-store.js';
import { RedisRuleStore } from '../../src/ports/rule-store/rule-store-redis.js';
import { CronScheduler } from '../../src/rules/scheduler.js';
import type { Rule } from '../../src/rules/model.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';

const log = createLogger('silent');
let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

/** One node's automation ports: its own connections, as a separate process would have. */
interface Node {
  name: string;
  store: RedisRuleStore;
  lease: RedisLease;
}

const opened: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((close) => close()));
});

async function node(name: string, keys: RedisKeys, options: { url?: string; now?: () => number } = {}): Promise<Node> {
  const url = options.url ?? redis.url;
  const store = new RedisRuleStore(await connectRedis(url, { name: `${name}:rules`, log }), { log, keys, ...(options.now ? { now: options.now } : {}) });
  const lease = new RedisLease(await connectRedis(url, { name: `${name}:lease`, log }), { keys });
  opened.push(() => store.close(), () => lease.close());
  return { name, store, lease };
}

interface Fired {
  node: string;
  ruleId: string;
  at: number;
}

function scheduler(n: Node, clock: { readonly now: number }, fired: Fired[], extra: { pollMs?: number; reloadMs?: number } = {}): CronScheduler {
  const s = new CronScheduler({
    store: n.store,
    lease: n.lease,
    nodeId: n.name,
    fire: async (_homeId, ruleId, at) => void fired.push({ node: n.name, ruleId, at }),
    log,
    now: () => clock.now,
    ...extra,
  });
  opened.unshift(() => s.stop());
  return s;
}

/** Resolves with the first change of `homeId` the store tells its listeners of. */
function nextChange(store: RedisRuleStore, homeId: string): Promise<RuleStoreChange> {
  return new Promise((resolve) => {
    const stop = store.watch((c) => {
      if (c.homeId !== homeId) return;
      stop();
      resolve(c);
    });
  });
}

const LIGHT = { name: 'Hall light', triggers: [{ type: 'state', hub: 'hub1', device: 'motion', attr: 'motion', to: true }], actions: [{ type: 'command', hub: 'hub1', device: 'light', set: { on: true } }] };
const EVERY_MINUTE = { name: 'Every minute', triggers: [{ type: 'cron', cron: '* * * * *' }], actions: [{ type: 'command', hub: 'hub1', device: 'plug', set: { on: true } }] };

describe('watch across nodes', () => {
  it('a change through one node reaches the listeners of every node, each once', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const [a, b] = [await node('node-a', keys), await node('node-b', keys)];
    const heardA: RuleStoreChange[] = [];
    const heardB: RuleStoreChange[] = [];
    a.store.watch((c) => heardA.push(c));
    b.store.watch((c) => heardB.push(c));
    // a write through a store waits for its own subscription: after this, both listen
    await Promise.all([a.store.putSettings('home-a', { timeZone: 'UTC' }), b.store.putSettings('home-b', { timeZone: 'UTC' })]);
    await expect.poll(() => heardA.length + heardB.length).toBe(4);

    const rule = await b.store.createRule('home1', validateRuleSpec(LIGHT));
    await expect.poll(() => heardA.filter((c) => c.homeId === 'home1')).toEqual([{ homeId: 'home1', version: await b.store.homeVersion('home1') }]);
    await a.store.setRuleEnabled('home1', rule.id, false);
    const version = await a.store.homeVersion('home1');
    await expect.poll(() => heardB.filter((c) => c.homeId === 'home1').map((c) => c.version)).toEqual([expect.any(Number), version]);
    // each change once, on both nodes, in order (a node hears its own change through Redis too: it may come a little later)
    await expect.poll(() => heardA.filter((c) => c.homeId === 'home1').map((c) => c.version)).toEqual(heardB.filter((c) => c.homeId === 'home1').map((c) => c.version));
    // and the other node reads what it was told of
    expect(await b.store.getRule('home1', rule.id)).toMatchObject({ enabled: false, version: 2 });
  });

  it('after Redis restarts the subscriber comes back by itself and hears changes again', async () => {
    const own = await startRedis();
    opened.push(() => own.stop());
    const keys = new RedisKeys(uniquePrefix());
    const [a, b] = [await node('node-a', keys, { url: own.url }), await node('node-b', keys, { url: own.url })];
    const heard: RuleStoreChange[] = [];
    a.store.watch((c) => heard.push(c));
    await a.store.putSettings('home1', { timeZone: 'UTC' });
    await expect.poll(() => heard.length).toBe(1);

    await own.restart(); // no persistence: empty, and every connection dropped
    await expect.poll(() => a.store.resubscribes, { timeout: 10_000, interval: 50 }).toBe(1);
    // node b's connection reconnects too ('fail' profile: its writes fail until then)
    await expect.poll(() => b.store.createRule('home1', validateRuleSpec(LIGHT)).then(() => true, () => false), { timeout: 10_000, interval: 50 }).toBe(true);
    await expect.poll(() => heard.length).toBe(2);
    // the version kept growing although Redis lost the counter (floored by Redis' clock)
    expect(heard[1]!.version).toBeGreaterThan(heard[0]!.version);
  });
});

describe('cron on two nodes: RedisLease + RedisRuleStore', () => {
  it('a per-minute rule fires each instant exactly once over two simulated hours, whichever node ticks first', async () => {
    const clock = { now: Date.UTC(2024, 0, 8, 6, 0) };
    const keys = new RedisKeys(uniquePrefix());
    const [a, b] = [await node('node-a', keys, { now: () => clock.now }), await node('node-b', keys, { now: () => clock.now })];
    const rule = await a.store.createRule('home1', validateRuleSpec(EVERY_MINUTE));
    const fired: Fired[] = [];
    const [sa, sb] = [scheduler(a, clock, fired), scheduler(b, clock, fired)];
    const end = clock.now + 2 * 3_600_000;
    while (clock.now < end) {
      clock.now += 20_000;
      // both nodes see every instant; which one ticks first changes every minute
      if (Math.floor(clock.now / 60_000) % 2 === 0) await Promise.all([sa.tick(), sb.tick()]);
      else await Promise.all([sb.tick(), sa.tick()]);
    }
    const instants = fired.map((f) => f.at).sort((x, y) => x - y);
    expect(instants).toHaveLength(120);
    expect(new Set(instants).size).toBe(120); // never twice
    expect(instants[0]).toBe(Date.UTC(2024, 0, 8, 6, 1));
    expect(instants.at(-1)).toBe(end);
    expect(fired.every((f) => f.ruleId === rule.id)).toBe(true);
    // the lease went to both nodes, and each loser counted the instant as taken
    expect(new Set(fired.map((f) => f.node)).size).toBe(2);
    expect(sa.counts.taken + sb.counts.taken).toBe(120);
    expect(sa.counts.missed + sb.counts.missed).toBe(0);
    expect(await b.store.getCursor(rule.id)).toBe(end);
  });

  it('with real timers: two running schedulers fire each instant of a per-second rule once', async () => {
    const clock = {
      get now() {
        return Date.now();
      },
    };
    const keys = new RedisKeys(uniquePrefix());
    const [a, b] = [await node('node-a', keys), await node('node-b', keys)];
    const rule = await a.store.createRule('home1', validateRuleSpec({ ...EVERY_MINUTE, triggers: [{ type: 'cron', cron: '* * * * * *' }] }, { minCronIntervalMs: 1_000 }));
    const fired: Fired[] = [];
    const [sa, sb] = [scheduler(a, clock, fired, { pollMs: 25 }), scheduler(b, clock, fired, { pollMs: 25 })];
    sa.start();
    sb.start();
    await expect.poll(() => fired.length, { timeout: 10_000, interval: 50 }).toBeGreaterThanOrEqual(3);
    await Promise.all([sa.stop(), sb.stop()]);
    const instants = fired.map((f) => f.at).sort((x, y) => x - y);
    expect(new Set(instants).size).toBe(instants.length); // never twice
    for (const at of instants) expect(at % 1_000).toBe(0);
    // consecutive seconds, none missing between the first and the last
    expect(instants.at(-1)! - instants[0]!).toBe((instants.length - 1) * 1_000);
    expect(fired.every((f) => f.ruleId === rule.id)).toBe(true);
  });

  it('a rule disabled through node B stops firing on node A at once: the change reaches A’s scheduler by watch', async () => {
    const clock = { now: Date.UTC(2024, 0, 8, 6, 0, 10) };
    const keys = new RedisKeys(uniquePrefix());
    const [a, b] = [await node('node-a', keys, { now: () => clock.now }), await node('node-b', keys, { now: () => clock.now })];
    const rule = await b.store.createRule('home1', validateRuleSpec(EVERY_MINUTE));
    const fired: Fired[] = [];
    // no periodic reload within the test: only a watch notice makes A re-read the rules
    const sa = scheduler(a, clock, fired, { reloadMs: 86_400_000 });
    clock.now = Date.UTC(2024, 0, 8, 6, 1, 1);
    await sa.tick();
    expect(fired.map((f) => f.at)).toEqual([Date.UTC(2024, 0, 8, 6, 1)]);

    const off = nextChange(a.store, 'home1');
    await b.store.setRuleEnabled('home1', rule.id, false);
    await off;
    clock.now = Date.UTC(2024, 0, 8, 6, 2, 1);
    await sa.tick();
    expect(fired).toHaveLength(1);
    expect(sa.size).toBe(0);

    const on = nextChange(a.store, 'home1');
    await b.store.setRuleEnabled('home1', rule.id, true);
    await on;
    clock.now = Date.UTC(2024, 0, 8, 6, 3, 1);
    await sa.tick();
    // re-enabled at 06:02:01: the 06:03 instant fires, the 06:02 one (disabled then) never does
    expect(fired.map((f) => new Date(f.at).toISOString())).toEqual(['2024-01-08T06:01:00.000Z', '2024-01-08T06:03:00.000Z']);
  });
});

describe('cron on two nodes whose clocks disagree: Redis’s clock decides', () => {
  const PER_SECOND = { ...EVERY_MINUTE, triggers: [{ type: 'cron', cron: '* * * * * *' }] };

  it('a node an hour ahead fires nothing early and moves no cursor; the node on time fires every instant', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const [a, b] = [await node('node-a', keys), await node('node-b', keys)];
    const rule = await b.store.createRule('home1', validateRuleSpec(PER_SECOND, { minCronIntervalMs: 1_000 }));
    const fired: Array<Fired & { realAt: number }> = [];
    const run = (n: Node, ahead: number) => {
      const s = new CronScheduler({ store: n.store, lease: n.lease, nodeId: n.name, fire: async (_h, ruleId, at) => void fired.push({ node: n.name, ruleId, at, realAt: Date.now() }), log, now: () => Date.now() + ahead, pollMs: 25 });
      opened.unshift(() => s.stop());
      return s;
    };
    const sa = run(a, 3_600_000);
    const sb = run(b, 0);
    // A alone, an hour ahead: nothing is due by Redis's clock yet
    await sa.tick();
    expect(fired).toEqual([]);
    expect(sa.counts.missed).toBe(0);
    expect(await a.store.getCursor(rule.id)).toBeNull();

    sa.start();
    sb.start();
    await expect.poll(() => fired.length, { timeout: 10_000, interval: 50 }).toBeGreaterThanOrEqual(4);
    await Promise.all([sa.stop(), sb.stop()]);
    // no instant before its time (by the one clock of this machine and its Redis), none twice, none lost
    for (const f of fired) expect(f.at).toBeLessThanOrEqual(f.realAt + CLOCK_SLACK_MS);
    const instants = fired.map((f) => f.at).sort((x, y) => x - y);
    expect(new Set(instants).size).toBe(instants.length);
    expect(instants.at(-1)! - instants[0]!).toBe((instants.length - 1) * 1_000);
    expect(sa.counts.missed + sb.counts.missed).toBe(0);
    expect(await b.store.getCursor(rule.id)).toBeLessThanOrEqual(Date.now() + CLOCK_SLACK_MS);
  });

  it('the cursor refuses an instant past Redis’s clock', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const a = await node('node-a', keys);
    const rule = await a.store.createRule('home1', validateRuleSpec(EVERY_MINUTE));
    const redisNow = await a.store.sharedTime();
    expect(await a.store.advanceCursor('home1', rule.id, redisNow + 120_000)).toBe(false);
    expect(await a.store.getCursor(rule.id)).toBeNull();
    expect(await a.store.advanceCursor('home1', rule.id, redisNow - 60_000)).toBe(true);
  });

  it('a rule created through a node an hour behind is dated by Redis’s clock, and never fires for an instant before it', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const a = await node('node-a', keys);
    const realNow = () => performance.timeOrigin + performance.now();
    // daily at the minute before now, catching up a whole day: only its creation time keeps it from firing
    const prev = new Date(realNow() - 60_000);
    const daily = { ...EVERY_MINUTE, triggers: [{ type: 'cron', cron: `${prev.getUTCMinutes()} ${prev.getUTCHours()} * * *`, catchUpMs: 86_400_000 }] };
    const before = await a.store.sharedTime();
    // node B, its whole process an hour behind (as with a preloaded clock)
    vi.useFakeTimers({ toFake: ['Date'], now: realNow() - 3_600_000 });
    let rule: Rule;
    try {
      const b = await node('node-b', keys);
      rule = await b.store.createRule('home1', validateRuleSpec(daily));
    } finally {
      vi.useRealTimers();
    }
    expect(rule.createdAt).toBeGreaterThanOrEqual(before);
    expect(rule.updatedAt).toBe(rule.createdAt);
    const fired: Fired[] = [];
    const sa = scheduler(a, { get now() { return realNow(); } }, fired);
    await sa.tick();
    expect(fired).toEqual([]);
    expect(sa.size).toBe(1);
  });
});
