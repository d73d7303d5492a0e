import { createServer, type IncomingMessage, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { decodeValue, encodeApp } from '../../src/index.js';
import { AppPool } from '../../load/loadgen/apps.js';
import type { AppSpec, WorkerConfig } from '../../load/loadgen/ipc.js';
import { WorkerMetrics } from '../../load/loadgen/metrics.js';
import { SourcePorts } from '../../load/loadgen/sources.js';
import { AdminClient } from '../../load/wire/admin.js';

/**
 * The load tool's app subscribers against a stand-in node that refuses upgrades and subscriptions
 * as a node does: a failure is counted under the server's code, and a temporary one (`busy`) is
 * tried again after a backoff, as an app would, before it counts as failed.
 */

type Answer = { refuse: number; code: string } | { sub: 'ok' | 'err'; code?: string };

let server: Server | null = null;

afterEach(async () => {
  const s = server;
  server = null;
  if (s) await new Promise<void>((r) => s.close(() => r()));
});

/** A node stand-in on a free port: the n-th upgrade gets `answers[n]` (the last one repeats). */
async function standIn(answers: Answer[]): Promise<{ url: string; upgrades: () => number }> {
  let n = 0;
  const wss = new WebSocketServer({ noServer: true });
  const s = createServer();
  s.on('upgrade', (req: IncomingMessage, socket, head) => {
    const a = answers[Math.min(n++, answers.length - 1)]!;
    if ('refuse' in a) {
      const body = JSON.stringify({ ok: false, code: a.code, num: 503, temporary: true, message: 'refused by the stand-in' });
      socket.end(`HTTP/1.1 ${a.refuse} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nretry-after: 1\r\n\r\n${body}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data: Buffer) => {
        const m = decodeValue(new Uint8Array(data)) as { op: string; id: number; home: string };
        const reply = a.sub === 'ok' ? { op: 'ok' as const, id: m.id, result: { home: m.home } } : { op: 'err' as const, id: m.id, code: a.code!, msg: 'no' };
        ws.send(encodeApp(reply as never), { binary: true });
      });
    });
  });
  s.on('close', () => wss.close());
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  server = s;
  return { url: `ws://127.0.0.1:${(s.address() as { port: number }).port}`, upgrades: () => n };
}

function pool(url: string, apps: AppSpec[]): { pool: AppPool; metrics: WorkerMetrics } {
  const config: WorkerConfig = { targets: [url], hubs: [], devices: 2, sourceAddresses: [], connectConcurrency: 4, connectTimeoutMs: 5_000, adminToken: 'unused', signed: true, fill: false, reconnect: false, apps };
  const metrics = new WorkerMetrics();
  return { pool: new AppPool(apps, config, metrics, new SourcePorts([])), metrics };
}

/** the node's admin API as far as apps use it: a user token, which the stand-in takes as it is */
class TokenOnly extends AdminClient {
  override async appToken(): Promise<string> {
    return 'a-user-token';
  }
}
const noAdmin = (): AdminClient => new TokenOnly('ws://127.0.0.1:9', 'unused');

describe('the load tool app subscribers', () => {
  it('tries an app refused busy again after its backoff, and counts the refusal as a retry', async () => {
    const node = await standIn([{ refuse: 503, code: 'busy' }, { sub: 'ok' }]);
    const { pool: apps, metrics } = pool(node.url, [{ homes: ['h1', 'h2'], target: 0 }]);
    expect(await apps.connectAll(noAdmin)).toEqual({ ok: 1, failed: 0 });
    expect(node.upgrades()).toBe(2);
    expect(metrics.counters.errors).toEqual({ 'retry:app:busy': 1 });
    expect(metrics.counters.apps).toBe(1);
    apps.stop();
  });

  it('counts a permanent refusal under its code at once, and a refused subscription under its own', async () => {
    const refused = await standIn([{ refuse: 401, code: 'unauthorized' }]);
    const a = pool(refused.url, [{ homes: ['h1'], target: 0 }]);
    expect(await a.pool.connectAll(noAdmin)).toEqual({ ok: 0, failed: 1 });
    expect(refused.upgrades()).toBe(1);
    expect(a.metrics.counters.errors).toEqual({ 'app:unauthorized': 1 });
    await new Promise<void>((r) => server!.close(() => r()));
    server = null;

    const forbidden = await standIn([{ sub: 'err', code: 'forbidden' }]);
    const b = pool(forbidden.url, [{ homes: ['h1'], target: 0 }]);
    expect(await b.pool.connectAll(noAdmin)).toEqual({ ok: 0, failed: 1 });
    expect(b.metrics.counters.errors).toEqual({ 'app:forbidden': 1 });
    b.pool.stop();
  });
});
