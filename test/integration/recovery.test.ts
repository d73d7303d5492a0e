import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../../load/wire/hub-client.js';
import { startNats, startRedis, uniquePrefix } from '../../load/harness/index.js';
import { AppSocket } from '../helpers/app-socket.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/** What a mode gives the tests: three places an app can connect to (one node thrice when embedded). */
interface Deployment {
  nodes(): [ServerProcess, ServerProcess, ServerProcess];
  adminToken: string;
  /** loses the history as an operator or a crash would: its epoch must change */
  loseHistory(home: string): Promise<void>;
  close(): Promise<void>;
}

/** Small enough that a test can go past it; recoveries of up to this many events succeed. */
const HISTORY_SIZE = 40;

async function embedded(): Promise<Deployment> {
  let node = await startServerProcess({ TIER_HISTORY_SIZE: String(HISTORY_SIZE) });
  return {
    nodes: () => [node, node, node],
    adminToken: node.adminToken,
    // kill -9: the node did not stop cleanly, so what it acknowledged may not be on disk: new epoch
    async loseHistory() {
      await node.kill();
      node = await startServerProcess({ TIER_HISTORY_SIZE: String(HISTORY_SIZE), DATA_DIR: node.dataDir, ADMIN_TOKEN: node.adminToken });
    },
    close: async () => void (await node.stop()),
  };
}

async function cluster(): Promise<Deployment> {
  const [nats, redis] = await Promise.all([startNats(), startRedis()]);
  const prefix = uniquePrefix();
  const env = {
    NATS_URL: nats.url,
    REDIS_URL: redis.url,
    TIER_REDIS_PREFIX: prefix,
    TIER_HISTORY_SIZE: String(HISTORY_SIZE),
    ADMIN_TOKEN: 'recovery-admin-token-0123456789',
    JWT_SECRET: 'recovery-jwt-secret-0123456789abcdef',
  };
  const nodes = (await Promise.all(['a', 'b', 'c'].map((n) => startServerProcess({ ...env, NODE_ID: `node-${n}` })))) as [ServerProcess, ServerProcess, ServerProcess];
  return {
    nodes: () => nodes,
    adminToken: env.ADMIN_TOKEN,
    // a Redis that lost the home's keys (flushed, replaced)
    async loseHistory(home) {
      const client = new Redis(redis.url);
      await client.del(`${prefix}{home:${home}}:hist`, `${prefix}{home:${home}}:hist-meta`);
      await client.quit();
    },
    async close() {
      await Promise.allSettled(nodes.map((n) => n.stop()));
      await Promise.allSettled([nats.stop(), redis.stop()] as Array<Promise<unknown>>);
    },
  };
}

type Evt = { op: 'evt'; home: string; kind: string; attrs?: { n?: number }; pos: { epoch: string; offset: number } };

for (const [mode, deploy] of [
  ['embedded default (one node on disk)', embedded],
  ['cluster mode (three nodes, NATS, Redis)', cluster],
] as const) {
  describe(`apps recover what they missed: ${mode}`, { timeout: 60_000 }, () => {
    let d: Deployment;
    const hubs: HubClient[] = [];
    const apps: AppSocket[] = [];
    let homes = 0;

    beforeAll(async () => {
      d = await deploy();
    }, 60_000);
    afterAll(async () => {
      apps.forEach((a) => a.close());
      await Promise.allSettled(hubs.map((h) => h.terminate()));
      await d.close();
    });

    /** A new home with two hubs, on the first and second node, each with device d1 reported once. */
    const home = async () => {
      const id = `home-rec-${++homes}`;
      const [a, b] = d.nodes();
      const clients: HubClient[] = [];
      for (const [i, node] of [a, b].entries()) {
        const hubId = `${id}-h${i}`;
        const res = await api(node.httpUrl, 'POST', '/v1/admin/hubs', d.adminToken, { hubId, homeId: id });
        expect(res.status).toBe(201);
        const hub = new HubClient({ url: node.wsUrl, hubId, secret: res.body.secret });
        await hub.connect();
        await hub.report({ d1: { n: 0 } });
        hubs.push(hub);
        clients.push(hub);
      }
      return { id, hubs: clients as [HubClient, HubClient] };
    };
    const app = async (node: ServerProcess) => {
      const socket = new AppSocket(`${node.wsUrl}/app/v1?token=${d.adminToken}`);
      apps.push(socket);
      await socket.opened();
      return socket;
    };
    const events = (socket: AppSocket, homeId: string): Evt[] => socket.messages.filter((m) => m.op === 'evt' && m.home === homeId);
    /** Waits until the socket has an event of the home at `offset` or later. */
    const reach = (socket: AppSocket, homeId: string, offset: number) => socket.next((m) => m.op === 'evt' && m.home === homeId && m.pos?.offset >= offset);
    const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

    it('an app that reconnects (to another node) with its position gets exactly the events it missed, in order, then live ones', async () => {
      const h = await home();
      const [first, , third] = d.nodes();
      const before = await app(first);
      const sub = await before.request({ op: 'sub', home: h.id });
      expect(sub.result).toMatchObject({ home: h.id, pos: { epoch: expect.any(String), offset: expect.any(Number) } });
      await h.hubs[0].report({ d1: { n: 1 } });
      const last = (await reach(before, h.id, sub.result.pos.offset + 1)).pos;
      before.close();
      await before.closed;

      // 20 events while it is away, from hubs held by two nodes
      const N = 20;
      for (let n = 2; n < 2 + N; n++) await h.hubs[(n % 2) as 0 | 1].report({ d1: { n } });

      const after = await app(third);
      const answer = await after.request({ op: 'sub', home: h.id, since: last });
      expect(answer.result).toEqual({ home: h.id, pos: last, recovered: true });
      await reach(after, h.id, last.offset + N);
      const missed = events(after, h.id);
      expect(missed.map((e) => e.pos.offset)).toEqual(range(last.offset + 1, last.offset + N));
      expect(missed.map((e) => e.attrs?.n).sort((x, y) => x! - y!)).toEqual(range(2, 1 + N));
      expect(new Set(missed.map((e) => e.pos.epoch))).toEqual(new Set([last.epoch]));
      // the answer came first, then the missed events
      expect(after.messages.indexOf(answer)).toBeLessThan(after.messages.indexOf(missed[0]));

      await h.hubs[1].report({ d1: { n: 100 } });
      const live = await reach(after, h.id, last.offset + N + 1);
      expect(live).toMatchObject({ attrs: { n: 100 }, pos: { epoch: last.epoch, offset: last.offset + N + 1 } });
      expect(events(after, h.id)).toHaveLength(N + 1);
    });

    it('the seam has no duplicate and no gap while reports keep coming', async () => {
      const h = await home();
      const [first, second] = d.nodes();
      const one = await app(first);
      const start = (await one.request({ op: 'sub', home: h.id })).result.pos;
      let n = 0;
      let streaming = true;
      const stream = (async () => {
        while (streaming) await Promise.all([h.hubs[0].report({ d1: { n: ++n } }), h.hubs[1].report({ d1: { n: ++n } })]);
      })();
      await reach(one, h.id, start.offset + 10);
      one.close();
      await one.closed;
      const got = events(one, h.id);
      const last = got[got.length - 1]!.pos;
      const two = await app(second);
      const answer = await two.request({ op: 'sub', home: h.id, since: last });
      expect(answer.result.recovered).toBe(true);
      await reach(two, h.id, last.offset + 20);
      streaming = false;
      await stream;
      // every report made one event: the home's newest offset is the start plus all of them
      const end = start.offset + n;
      await reach(two, h.id, end);
      const offsets = [...got, ...events(two, h.id)].map((e) => e.pos.offset);
      expect(offsets).toEqual(range(start.offset + 1, end));
    });

    it('an app whose position is trimmed away, or from a lost history, is told to reload with the current position', async () => {
      const h = await home();
      const [first, second] = d.nodes();
      const socket = await app(first);
      const pos = (await socket.request({ op: 'sub', home: h.id })).result.pos;
      socket.close();
      for (let n = 1; n <= HISTORY_SIZE + 5; n++) await h.hubs[0].report({ d1: { n } });

      const late = await app(second);
      const tooOld = await late.request({ op: 'sub', home: h.id, since: pos });
      expect(tooOld.result).toEqual({ home: h.id, pos: { epoch: pos.epoch, offset: pos.offset + HISTORY_SIZE + 5 }, recovered: false, reason: 'too_old' });
      late.close();

      const current = tooOld.result.pos;
      await d.loseHistory(h.id);
      const fresh = await app(d.nodes()[1]);
      const changed = await fresh.request({ op: 'sub', home: h.id, since: current });
      expect(changed.result).toMatchObject({ home: h.id, recovered: false, reason: 'epoch_changed' });
      expect(changed.result.pos.epoch).not.toBe(current.epoch);
    });
  });
}
