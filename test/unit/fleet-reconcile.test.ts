/**
 * The healing of a cluster node after a bus outage, without servers: the outbox that sends fleet
 * notices again once the bus is back (newest kept; a full one asks every node to reconcile), and
 * the reconciler that re-checks held hub sessions against the registry in batches and closes the
 * app sockets of revocations it had missed.
 */
import { describe, expect, it, vi } from 'vitest';
import { isSmi } from '../helpers/is-smi.js';
import { subjects, type TokenRevocation } from '../../proto/subjects.js';
import { FleetReconciler, verdictOf, type HeldHub } from '../../src/api/fleet-reconcile.js';
import { NoticeOutbox } from '../../src/api/notice-outbox.js';
import { steadyWallMs } from '../../src/actors/clock.js';
import { RevocationList } from '../../src/auth/revocations.js';
import { createLogger } from '../../src/log/logger.js';
import { MemoryHubRegistry } from '../../src/ports/hub-registry/hub-registry-memory.js';
import { provisionMark } from '../../src/ports/hub-registry/hub-registry.js';
import type { Bus } from '../../src/ports/bus/bus.js';
import { decodeValue, encodeBus } from '../../src/protocol/codec.js';
import { OpenAppSockets } from '../../src/transport/app-sockets.js';


const log = createLogger('silent');

/** A bus that keeps what reached it while "connected", and drops the rest as NATS does. */
function fakeLink() {
  const sent: Array<{ subject: string; body: unknown }> = [];
  const link = { connected: true, onReconnect: () => ({ unsubscribe() {} }) };
  const bus = {
    publish(subject: string, data: Uint8Array) {
      if (link.connected) sent.push({ subject, body: decodeValue(data) });
    },
  } as unknown as Bus;
  return { sent, link, bus };
}

const notice = (hub: string) => encodeBus({ hub });

describe('NoticeOutbox', () => {
  it('sends again, after a reconnect, the notices published while the bus was down and shortly before', () => {
    let now = 1_000_000;
    const { sent, link, bus } = fakeLink();
    const outbox = new NoticeOutbox(bus, link, { recentMs: 30_000, now: () => now });
    outbox.publish(subjects.hubsChanged, notice('old')); // long before: delivered
    now += 60_000;
    outbox.publish(subjects.hubsChanged, notice('unnoticed')); // 5 s before the loss was seen: maybe lost
    now += 5_000;
    link.connected = false;
    const downSince = now;
    outbox.publish(subjects.hubsChanged, notice('during'));
    outbox.publish(subjects.tokensRevoked, notice('revocation'));
    expect(sent.map((s) => s.body)).toEqual([{ hub: 'old' }, { hub: 'unnoticed' }]); // the last two never left
    const before = sent.length;
    now += 20_000;
    link.connected = true;
    expect(outbox.reconnected(downSince)).toEqual({ resent: 3, reconcile: false });
    expect(sent.slice(before).map((s) => s.body)).toEqual([{ hub: 'unnoticed' }, { hub: 'during' }, { hub: 'revocation' }]);
    // held a while more (this link may die too), then pruned once delivered
    now += 31_000;
    outbox.publish(subjects.hubsChanged, notice('later'));
    expect(outbox.size).toBe(1);
  });

  it('a step back of the wall clock during an outage leaves its notices in the resend (review "clock")', () => {
    // only Date is faked, first: the outbox takes its clock when made; the bus's outage time is steady (bus-nats.ts)
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    try {
      const { sent, link, bus } = fakeLink();
      const outbox = new NoticeOutbox(bus, link, { recentMs: 30_000 });
      link.connected = false;
      const downSince = steadyWallMs();
      vi.setSystemTime(Date.now() - 60_000);
      outbox.publish(subjects.hubsChanged, notice('during'));
      link.connected = true;
      expect(outbox.reconnected(downSince)).toEqual({ resent: 1, reconcile: false });
      expect(sent.map((s) => s.body)).toEqual([{ hub: 'during' }]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps the newest when full, and then announces fleet.reconcile instead of what it lost', () => {
    let now = 0;
    const { sent, link, bus } = fakeLink();
    const outbox = new NoticeOutbox(bus, link, { recentMs: 30_000, max: 3, now: () => now });
    link.connected = false;
    for (let i = 0; i < 5; i++) outbox.publish(subjects.hubsChanged, notice(`h${i}`));
    expect(outbox.size).toBe(3);
    now += 1_000;
    link.connected = true;
    expect(outbox.reconnected(0)).toEqual({ resent: 0, reconcile: true });
    expect(sent).toEqual([{ subject: subjects.fleetReconcile, body: { reason: 'outbox_overflow' } }]);
  });
});

/** A held session as the reconciler sees it, and what it was told. */
class Held implements HeldHub {
  told: string | null = null;
  constructor(
    readonly hubId: string,
    readonly homeId: string,
    readonly provisioned = 0,
  ) {}
}

function node(held: Held[]) {
  const byHub = new Map(held.map((s) => [s.hubId, s]));
  const registry = new MemoryHubRegistry();
  let reads = 0;
  const counted = Object.assign(Object.create(registry) as MemoryHubRegistry, {
    placements: (ids: readonly string[]) => {
      reads++;
      return registry.placements(ids);
    },
  });
  const revoked = new RevocationList();
  const sockets = new OpenAppSockets();
  const stored: TokenRevocation[] = [];
  const closes: Record<string, number> = {};
  const reconciler = new FleetReconciler<Held>({
    registry: counted,
    revocationStore: { list: async () => stored },
    revoked,
    sockets,
    sessions: { get: (id) => byHub.get(id), list: () => [...byHub.values()] },
    close: (s, e) => {
      s.told = e;
      byHub.delete(s.hubId);
    },
    log,
    metrics: { reconciled() {}, closed: (what, n) => void (closes[what] = (closes[what] ?? 0) + n), failed() {} },
    batch: 2,
  });
  return { registry, reconciler, revoked, sockets, stored, closes, reads: () => reads };
}

const hubRecord = (hubId: string, homeId: string, enabled = true) => ({ hubId, homeId, model: undefined, secret: 's', enabled, createdAt: 0 });

describe('FleetReconciler', () => {
  it('closes held sessions of deleted, disabled and moved hubs, reading the registry in batches', async () => {
    const kept = new Held('kept', 'home-a');
    const deleted = new Held('deleted', 'home-a');
    const disabled = new Held('disabled', 'home-a');
    const moved = new Held('moved', 'home-a');
    const n = node([kept, deleted, disabled, moved]);
    await n.registry.create(hubRecord('kept', 'home-a'));
    await n.registry.create(hubRecord('disabled', 'home-a', false));
    await n.registry.create(hubRecord('moved', 'home-b'));
    await n.reconciler.all('reconnect');
    expect([kept.told, deleted.told, disabled.told, moved.told]).toEqual([null, 'hub_disabled', 'hub_disabled', 'hub_moved']);
    expect(n.closes).toEqual({ deleted: 1, disabled: 1, moved: 1 });
    expect(n.reads()).toBe(2); // 4 sessions, 2 per read
  });

  it('re-reads stored revocations and closes the app sockets they cover', async () => {
    const n = node([]);
    const closedWith: number[] = [];
    const socket = { close: (code: number) => void closedWith.push(code) };
    n.sockets.opened(socket, { kind: 'user', sub: 'mallory', homes: new Set(['h']), jti: 't1', iat: 100 } as never);
    n.stored.push({ jti: 't1', exp: Math.floor(Date.now() / 1000) + 3600 });
    await n.reconciler.all('reconnect');
    expect(n.revoked.isRevoked({ sub: 'mallory', jti: 't1', iat: 100 })).toBe(true);
    expect(closedWith).toEqual([4007]);
    expect(n.closes).toEqual({ app_socket: 1 });
  });

  it('a changed hub re-checks only the session it holds; asks meanwhile share reads', async () => {
    const moved = new Held('moved', 'home-a');
    const n = node([moved]);
    await n.registry.create(hubRecord('moved', 'home-b'));
    await Promise.all([n.reconciler.hub('moved'), n.reconciler.hub('not-held'), n.reconciler.hub('moved')]);
    expect(moved.told).toBe('hub_moved');
    expect(n.reads()).toBe(1);
  });

  it('retries after the store failed', async () => {
    const held = new Held('gone', 'home-a');
    const byHub = new Map([['gone', held]]);
    let fail = true;
    let failures = 0;
    const reconciler = new FleetReconciler<Held>({
      registry: { forgetAll() {}, placements: async (ids) => (fail ? Promise.reject(new Error('redis down')) : ids.map(() => null)) },
      revoked: new RevocationList(),
      sockets: new OpenAppSockets(),
      sessions: { get: (id) => byHub.get(id), list: () => [...byHub.values()] },
      close: (s, e) => void (s.told = e),
      log,
      metrics: { reconciled() {}, closed() {}, failed: () => void failures++ },
      retryMs: 1,
    });
    await reconciler.all('notice');
    expect(failures).toBe(1);
    fail = false;
    while (held.told === null) await new Promise((r) => setImmediate(r));
    expect(held.told).toBe('hub_disabled');
    reconciler.stop();
  });

  it('verdictOf: what a placement says about a session of a home', () => {
    const at = 1_764_900_000_123;
    const s = new Held('hub', 'h', provisionMark(at));
    expect(verdictOf(s, null)).toBe('deleted');
    expect(verdictOf(s, { homeId: 'h', enabled: false, createdAt: at })).toBe('disabled');
    expect(verdictOf(s, { homeId: 'x', enabled: true, createdAt: at })).toBe('moved');
    expect(verdictOf(s, { homeId: 'h', enabled: true, createdAt: at })).toBeNull();
    // deleted, then the same id provisioned again (in any home): the old session is the deleted hub's
    expect(verdictOf(s, { homeId: 'x', enabled: true, createdAt: at + 1 })).toBe('deleted');
    expect(verdictOf(new Held('hub', 'h'), { homeId: 'h', enabled: true, createdAt: at + 1 })).toBeNull();
  });

  it('provisionMark: a small integer (kept in the field, not boxed), never 0, another for another millisecond', () => {
    for (const at of [0, 1, 1_764_900_000_123, 1_764_900_000_124, 0x3fff_fffe, 8.64e15]) {
      const mark = provisionMark(at);
      expect(Number.isInteger(mark) && mark >= 1 && mark < 2 ** 30 - 1).toBe(true);
      // what the field costs: a heap number of its own in every session and socket when not
      expect(isSmi(mark)).toBe(true);
    }
    expect(provisionMark(1_764_900_000_123)).not.toBe(provisionMark(1_764_900_000_124));
  });
});
