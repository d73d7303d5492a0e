import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { paced } from '../../bench/lib/paced.js';

// A server that answers one request at a time, each 50 ms after it arrived: at 100 requests a
// second on one connection the queue grows, and the latency of a request includes its wait.
const server = createServer((_req, res) => setTimeout(() => res.end('ok'), 50));
const listening = new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('paced: the fixed-rate HTTP load of the benchmarks', () => {
  it('measures each request from when it was due, not from its write, so a queued wait is counted', async () => {
    await listening;
    const { port } = server.address() as AddressInfo;
    const r = await paced({ url: `http://127.0.0.1:${port}`, rate: 100, durationS: 0.4, connections: 1, method: 'GET', path: '/', pid: process.pid });
    expect(r.ok).toBe(40);
    expect(r.late).toBeGreaterThan(30);
    // the 40th request was due at 0.39 s and cannot be answered before 40 × 50 ms = 2 s:
    // measured from its write it would read about 50 ms
    expect(r.maxMs).toBeGreaterThan(1_500);
    expect(r.p50Ms).toBeGreaterThan(500);
  });
});
