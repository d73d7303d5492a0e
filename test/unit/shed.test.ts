import { afterEach, describe, expect, it, vi } from 'vitest';
import { Shedder, type Sheddable } from '../../src/actors/shed.js';
import { createAdminApp } from '../../src/admin/admin-server.js';
import { AdminTokens } from '../../src/auth/admin-tokens.js';
import { createLogger } from '../../src/log/logger.js';
import { fakeUwsResponse } from '../helpers/fake-uws-response.js';

/** `n` sessions recording when (fake ms) each was told to reconnect, and with what. */
function fleet(n: number) {
  const told: Array<{ id: number; at: number; afterMs: number; why: string }> = [];
  const sessions = Array.from({ length: n }, (_, id): Sheddable & { state: string } => {
    const s = { state: 'online', shutdown: (afterMs: number, _r: undefined, why: string) => void ((s.state = 'draining'), told.push({ id, at: Date.now(), afterMs, why })) };
    return s;
  });
  return { told, view: { size: n, has: () => true, get: () => undefined, list: () => [...sessions] } };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('Shedder: hub sessions moved off a node', () => {
  it('tells n distinct sessions, picked at random, to reconnect within a second, spread evenly over the time given', () => {
    vi.useFakeTimers({ now: 0 });
    const { told, view } = fleet(100);
    const shedder = new Shedder(view);
    expect(shedder.start(30, 3_000)).toEqual({ shedding: 30, sessions: 100 });
    vi.advanceTimersByTime(1_000);
    // about a third after a third of the time: never all at once
    expect(told.length).toBeGreaterThanOrEqual(9);
    expect(told.length).toBeLessThanOrEqual(13);
    vi.advanceTimersByTime(2_500);
    expect(told).toHaveLength(30);
    expect(new Set(told.map((t) => t.id)).size).toBe(30);
    // not the first 30 of the list
    expect(told.map((t) => t.id).sort((a, b) => a - b)).not.toEqual(Array.from({ length: 30 }, (_, i) => i));
    for (const t of told) {
      expect(t.why).toBe('rebalancing');
      expect(t.afterMs).toBeGreaterThanOrEqual(0);
      expect(t.afterMs).toBeLessThan(1_000);
    }
    vi.advanceTimersByTime(10_000);
    expect(told).toHaveLength(30);
  });

  it('a step of the wall clock changes nothing of the spread: forward 10 min, none told early; back 1 h, none held (review "clock")', () => {
    vi.useFakeTimers({ now: 0 });
    const { told, view } = fleet(1_000);
    new Shedder(view).start(1_000, 600_000);
    vi.advanceTimersByTime(3_000);
    const early = told.length;
    expect(early).toBeLessThanOrEqual(7);
    // the wall clock alone steps (the monotonic clock and the timers go on)
    vi.setSystemTime(Date.now() + 600_000);
    vi.advanceTimersByTime(300);
    expect(told.length).toBeLessThanOrEqual(early + 1);
    vi.setSystemTime(Date.now() - 3_600_000);
    vi.advanceTimersByTime(60_000);
    expect(told.length).toBeGreaterThanOrEqual(100);
    expect(told.length).toBeLessThanOrEqual(110);
  });

  it('at most every session online; a new shed replaces the one in progress and never picks one already told', () => {
    vi.useFakeTimers({ now: 0 });
    const { told, view } = fleet(5);
    const shedder = new Shedder(view);
    expect(shedder.start(50, 1_000)).toEqual({ shedding: 5, sessions: 5 });
    // the first shed's tick at its start told one (of 5 over 1 s, ceil of a tenth)
    expect(told).toHaveLength(1);
    expect(shedder.start(10, 100)).toEqual({ shedding: 4, sessions: 4 });
    vi.advanceTimersByTime(5_000);
    expect(told).toHaveLength(5);
    expect(new Set(told.map((t) => t.id)).size).toBe(5);
  });

  it('POST /debug/shed on the admin port: admin token, hubs and overS checked, 202 with what it started', async () => {
    const started: Array<[number, number]> = [];
    const lines: string[] = [];
    const log = createLogger('info', {}, { write: (s: string) => void lines.push(s) });
    type Handler = (res: never, req: never) => void;
    const handlers = new Map<string, Handler>();
    const app = new Proxy({}, { get: (_, m) => (p: string, h: Handler) => (handlers.set(`${String(m)} ${p}`, h), app) });
    const shedder = { start: (n: number, overMs: number) => (started.push([n, overMs]), { shedding: Math.min(n, 7), sessions: 7 }) };
    createAdminApp({ App: () => app } as never, { metrics: {} as never, log, readiness: () => ({ ready: true, detail: {} }), shed: { adminToken: new AdminTokens('admin-token-0123456789'), shedder } });
    const call = (headers: Record<string, string>, body: string) =>
      new Promise<{ status: number; body: unknown }>((resolve) => {
        const res = fakeUwsResponse(body, (a) => resolve({ status: a.status, body: JSON.parse(a.body || 'null') as unknown }));
        handlers.get('post /debug/shed')!(res as never, { getHeader: (h: string) => headers[h] ?? '' } as never);
      });
    const auth = { authorization: 'Bearer admin-token-0123456789' };
    expect(await call({}, '{"hubs":3}')).toMatchObject({ status: 401 });
    expect(await call(auth, '{"hubs":0}')).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'hubs' } });
    expect(await call(auth, '{"hubs":"3"}')).toMatchObject({ status: 400, body: { field: 'hubs' } });
    expect(await call(auth, '{"hubs":3,"overS":0}')).toMatchObject({ status: 400, body: { field: 'overS' } });
    expect(await call(auth, '{"hubs":3,"overS":3601}')).toMatchObject({ status: 400, body: { field: 'overS' } });
    expect(await call(auth, 'not json')).toMatchObject({ status: 400, body: { field: 'hubs' } });
    expect(started).toEqual([]);
    expect(await call(auth, '{"hubs":3}')).toEqual({ status: 202, body: { ok: true, shedding: 3, sessions: 7, overS: 60 } });
    expect(await call(auth, '{"hubs":30,"overS":10}')).toEqual({ status: 202, body: { ok: true, shedding: 7, sessions: 7, overS: 10 } });
    expect(started).toEqual([
      [3, 60_000],
      [30, 10_000],
    ]);
    expect(lines.some((l) => l.includes('shedding hub sessions'))).toBe(true);
  });
});
