/**
 * A backend away fails the same work over and over: the lines about it are sampled (10 per kind and
 * 10 s for hub sessions' failed messages, one per 10 s for the cron scheduler's failed ticks), and a
 * summary line counts what was not logged, so an outage writes a bounded number of lines.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FrameType } from '../../proto/frames.js';
import { actorFailureLog } from '../../src/actors/actor.js';
import { HubSession, type HubLink } from '../../src/actors/hub-session.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { TierError } from '../../src/errors.js';
import { createLogger } from '../../src/log/logger.js';
import { MemoryLease } from '../../src/ports/lease/lease-memory.js';
import { MemoryRuleStore } from '../../src/ports/rule-store/rule-store-memory.js';
import { decodeHubFrame, encodeValue } from '../../src/protocol/codec.js';
import { CronScheduler } from '../../src/rules/scheduler.js';
import { hubSessionDeps } from '../helpers/hub-session-deps.js';

/** A logger writing parsed lines into an array. */
function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('info', {}, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { lines, log };
}

const away = () => new TierError('unavailable', 'redis at 127.0.0.1:1 is unreachable');
const settle = () => new Promise((r) => setImmediate(r));
const silentLink: HubLink = { send: () => true, close: () => {} };

const wheels: TimerWheel[] = [];
afterEach(() => {
  vi.useRealTimers();
  wheels.splice(0).forEach((w) => w.close());
});

describe('lines of an outage', () => {
  it("hub sessions' failed messages: 10 lines per message type and 10 s, then one with the count not logged", async () => {
    const { lines, log } = capture();
    vi.useFakeTimers({ toFake: ['Date', 'performance', 'setTimeout', 'clearTimeout'] });
    const wheel = new TimerWheel();
    wheels.push(wheel);
    const deps = hubSessionDeps(wheel, {});
    let failures = 0;
    const system = { ...deps.system, log, failureLog: actorFailureLog(log), onFailure: () => void failures++ };
    const sessions = Array.from({ length: 30 }, (_, i) => new HubSession(`hub-${i}`, 'home-1', silentLink, { ...deps, system }));
    for (const s of sessions) s.receiveFrame(decodeHubFrame(encodeValue({ t: FrameType.hello, v: 1, b: 'boot' })));
    await settle();
    expect(sessions.every((s) => s.state === 'online')).toBe(true);
    // Redis goes away: every session's close fails to release its directory entry
    deps.directory.release = () => Promise.reject(away());
    for (const s of sessions) s.tell({ type: 'closed', code: 1006 });
    while (failures < sessions.length) await settle();
    expect(lines.filter((l) => l.msg === 'actor message failed')).toHaveLength(10);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(lines.filter((l) => l.msg === 'actor message failures not logged')).toMatchObject([{ kind: 'hub:closed', skipped: 20, windowMs: 10_000, level: 50 }]);
  });

  it('the cron scheduler: one `tick failed` line per 10 s while its store is away, each with the count of ticks not logged', async () => {
    const { lines, log } = capture();
    vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'], now: Date.UTC(2024, 0, 8, 6) });
    const store = new MemoryRuleStore();
    store.listScheduled = () => Promise.reject(away());
    const scheduler = new CronScheduler({ store, lease: new MemoryLease(), nodeId: 'n1', fire: async () => {}, log, pollMs: 1_000 });
    scheduler.start();
    await vi.advanceTimersByTimeAsync(60_500);
    await scheduler.stop();
    expect(scheduler.counts.errors).toBe(60);
    const failed = lines.filter((l) => l.msg === 'cron scheduler tick failed');
    const summaries = lines.filter((l) => l.msg === 'cron: failures not logged');
    expect(failed.length).toBeLessThanOrEqual(7);
    expect(summaries.every((l) => l.kind === 'tick')).toBe(true);
    // every failed tick is either logged or counted
    expect(failed.length + summaries.reduce((n, l) => n + (l.skipped as number), 0)).toBe(60);
  });
});
