/** The public port's pause while out of open files: closed at the first failed probe, bound again with headroom. */
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { canOpenFiles, ListenPause } from '../../src/compose/listen-pause.js';
import { createLogger } from '../../src/log/logger.js';
import type { us_listen_socket } from '../../src/transport/uws.js';

describe('ListenPause', () => {
  afterEach(() => vi.useRealTimers());

  it('closes the socket when no file opens, listens again once `headroom` files open, and counts the pause', async () => {
    vi.useFakeTimers();
    const registry = new Registry();
    let free = 0;
    const first = { id: 1 } as unknown as us_listen_socket;
    const second = { id: 2 } as unknown as us_listen_socket;
    const closed: unknown[] = [];
    const listen = vi.fn(async () => ({ socket: second }));
    const pause = new ListenPause({ socket: first, listen, close: (s) => closed.push(s), log: createLogger('silent'), registry, headroom: 4, canOpen: (n) => n <= free });

    await vi.advanceTimersByTimeAsync(1_000);
    expect(pause.paused).toBe(true);
    expect(closed).toEqual([first]);
    // fewer files than the headroom: still paused, not bound
    free = 3;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pause.paused).toBe(true);
    expect(listen).not.toHaveBeenCalled();
    free = 4;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pause.paused).toBe(false);
    expect(await registry.getSingleMetricAsString('tier_listen_pauses_total')).toMatch(/tier_listen_pauses_total 1$/m);
    expect(await registry.getSingleMetricAsString('tier_listen_paused')).toMatch(/tier_listen_paused 0$/m);

    // a failed bind (the port taken) is tried again at the next probe
    free = 0;
    await vi.advanceTimersByTimeAsync(1_000);
    listen.mockRejectedValueOnce(new Error('in use'));
    free = 10;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pause.paused).toBe(true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pause.paused).toBe(false);
    pause.stop();
    expect(closed).toEqual([first, second, second]);
  });

  it('answers close their connections while paused and for closingAfterResumeMs after the port listens again', async () => {
    vi.useFakeTimers();
    let free = 10;
    const pressure = { closing: false };
    const socket = { id: 1 } as unknown as us_listen_socket;
    const pause = new ListenPause({ socket, listen: async () => ({ socket }), close: () => {}, log: createLogger('silent'), registry: new Registry(), headroom: 4, canOpen: (n) => n <= free, pressure, closingAfterResumeMs: 5_000, now: () => Date.now() });
    await vi.advanceTimersByTimeAsync(3_000);
    expect(pressure.closing).toBe(false);
    free = 0;
    await vi.advanceTimersByTimeAsync(1_000);
    expect([pause.paused, pressure.closing]).toEqual([true, true]);
    free = 10;
    await vi.advanceTimersByTimeAsync(1_000);
    expect([pause.paused, pressure.closing]).toEqual([false, true]);
    await vi.advanceTimersByTimeAsync(4_000);
    expect(pressure.closing).toBe(true);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(pressure.closing).toBe(false);
    pause.stop();
  });

  it('canOpenFiles opens and closes /dev/null', () => {
    expect(canOpenFiles(3)).toBe(true);
  });
});
