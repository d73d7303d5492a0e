/**
 * `npm run push-worker` started before its Redis (a Kubernetes cold start) waits for it as a node
 * waits for its backends (TIER_BACKEND_START_WAIT_MS), then delivers; it rides out a Redis restart
 * with a line per connection, not one per reconnect attempt, and delivers again after it. Past the
 * wait it exits 1 with one fatal line; SIGTERM while it waits exits 0.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, startRedis, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { createLogger } from '../../src/log/logger.js';
import { BullMqPushQueue } from '../../src/ports/push-queue/push-queue-bullmq.js';
import { RedisKeys } from '../../src/ports/redis.js';
import { eventually } from '../helpers/eventually.js';
import { scriptArgs } from '../helpers/server-process.js';

interface Worker {
  /** stdout and stderr lines, parsed when JSON (else `{ text }`) */
  readonly lines: Array<Record<string, unknown>>;
  readonly exited: Promise<number | null>;
  signal(name: NodeJS.Signals): void;
}

/** `src/push-worker.ts` as its own process, as deployed (LOG_LEVEL=info). */
function startPushWorker(env: Record<string, string>): Worker {
  const child = spawn(process.execPath, scriptArgs('src/push-worker.ts'), {
    env: {
      ...process.env,
      LOG_LEVEL: 'info',
      // the configuration of a cluster node; NATS itself is not used by the push worker
      NATS_URL: 'nats://127.0.0.1:1',
      TIER_SECRET_KEY: randomBytes(32).toString('hex'),
      ADMIN_TOKEN: randomBytes(24).toString('base64url'),
      JWT_SECRET: randomBytes(24).toString('base64url'),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
  const parse = (text: string) => {
    try {
      const v: unknown = JSON.parse(text);
      return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : { text };
    } catch {
      return { text };
    }
  };
  for (const stream of [child.stdout, child.stderr]) createInterface({ input: stream }).on('line', (l) => lines.push(parse(l)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  workers.push({ child, exited });
  return { lines, exited, signal: (name) => child.kill(name) };
}

const workers: Array<{ child: ReturnType<typeof spawn>; exited: Promise<unknown> }> = [];
const backends: Backend[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) s.close();
  for (const w of workers.splice(0)) {
    if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await w.exited;
  }
  await Promise.allSettled(backends.splice(0).map((b) => b.stop()));
});

const found = (w: Worker, msg: string) => async () => w.lines.find((l) => l.msg === msg);

describe('push worker and its Redis', { timeout: 90_000 }, () => {
  it('waits for Redis at start, delivers, rides out a Redis restart with a bounded number of lines, and delivers after it', async ({ signal }) => {
    const port = await freePort();
    const prefix = uniquePrefix();
    const worker = startPushWorker({ REDIS_URL: `redis://127.0.0.1:${port}`, TIER_REDIS_PREFIX: prefix });
    expect(await eventually(signal, 'the waiting line', found(worker, 'waiting for backends'))).toMatchObject({ level: 40, backend: 'redis', maxWaitMs: 120_000 });
    const redis = await startRedis({ port });
    backends.push(redis);
    await eventually(signal, 'the worker ready', found(worker, 'push worker ready'));
    expect(worker.lines).toContainEqual(expect.objectContaining({ msg: 'backends reachable' }));

    // Redis goes away; a stand-in on its port resets every connection, so the reconnect attempts can be counted
    await redis.stop();
    const outage = worker.lines.length;
    let attempts = 0;
    const resetting = createServer((socket) => {
      attempts++;
      socket.resetAndDestroy();
    });
    servers.push(resetting);
    await new Promise<void>((resolve) => resetting.listen(port, '127.0.0.1', resolve));
    await eventually(signal, 'a dozen reconnect attempts', async () => (attempts >= 12 ? true : undefined));
    await new Promise<void>((resolve) => resetting.close(() => resolve()));
    await redis.restart();

    const queue = await BullMqPushQueue.connect(redis.url, { name: 'probe', log: createLogger('silent'), keys: new RedisKeys(prefix) });
    try {
      const { id } = await queue.enqueue({ homeId: 'home-1', title: 'Door', body: 'opened', dedupKey: 'door-1' });
      await eventually(signal, 'the delivery after the restart', async () => worker.lines.find((l) => l.pushId === id));
    } finally {
      await queue.close();
    }
    const during = worker.lines.slice(outage);
    // one line per connection when it is lost, one when it is back: none per reconnect attempt
    expect(during.filter((l) => typeof l.msg === 'string' && l.msg.includes('redis error'))).toEqual([]);
    expect(during.filter((l) => (l.level as number) >= 40).length).toBeLessThanOrEqual(4);
    worker.signal('SIGTERM');
    expect(await worker.exited).toBe(0);
    expect(worker.lines.filter((l) => 'text' in l)).toEqual([]);
  });

  it('exits 1 with one fatal line once TIER_BACKEND_START_WAIT_MS has passed', async () => {
    const port = await freePort();
    const worker = startPushWorker({ REDIS_URL: `redis://127.0.0.1:${port}`, TIER_BACKEND_START_WAIT_MS: '1500' });
    expect(await worker.exited).toBe(1);
    const fatal = worker.lines.filter((l) => l.level === 60);
    expect(fatal).toEqual([expect.objectContaining({ msg: 'backends unreachable at start', backend: 'redis', err: expect.stringMatching(/TIER_BACKEND_START_WAIT_MS/) })]);
    expect(fatal[0]!.waitedMs).toBeGreaterThanOrEqual(1500);
    expect(worker.lines.filter((l) => 'text' in l)).toEqual([]);
  });

  it('exits 0 on SIGTERM while it waits', async ({ signal }) => {
    const port = await freePort();
    const worker = startPushWorker({ REDIS_URL: `redis://127.0.0.1:${port}` });
    await eventually(signal, 'the waiting line', found(worker, 'waiting for backends'));
    worker.signal('SIGTERM');
    expect(await worker.exited).toBe(0);
    expect(worker.lines).toContainEqual(expect.objectContaining({ msg: 'stopped while starting', signal: 'SIGTERM' }));
    expect(worker.lines.filter((l) => 'text' in l)).toEqual([]);
  });
});
