import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameType, type Attrs, type CommandFrame, type ErrorFrame, type ServerToHubFrame } from '../../proto/frames.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';
import { api } from '../helpers/server-process.js';

/**
 * A hub whose desired state is larger than a welcome holds gets the rest as `set` commands
 * (PROTOCOL.md §6) and answers each (§5); those answers are free of its rate budget (§4), however
 * many there are. They once were not past the 32 commands in flight: the hub was refused
 * `rate_limited` and closed 4004, and again at every reconnect. Results for ids the server never
 * sent stay bounded by the budget. A node in this process (memory ports, default limits) and the
 * load tool's hub client, which answers every `set`.
 */
const ADMIN = 'desired-after-welcome-admin-token-0123';
const DEVICES = 512;
/** 512 devices of 240 characters: within the 128 KiB of desired state a hub may have, and 64 to a 16 KiB welcome */
const VALUE = 'v'.repeat(240);

describe('desired state past the welcome, as set commands the hub answers (in-process node)', () => {
  let node: InProcessNode;
  const clients: HubClient[] = [];

  beforeAll(async () => {
    node = await startInProcessNode(ADMIN, 'desired-after-welcome-jwt-secret-0123456789');
  });

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.terminate()));
    await node?.server.close();
  });

  /**
   * Provisions `hubId` with desired state on every device, connects it and waits (no ceiling but
   * the test's) until every device's desired state reached it, in the welcome or in `set`s; then a
   * heartbeat's answer, which comes after the session handled every answer the hub sent before it.
   */
  async function flooded(hubId: string) {
    const created = await api(node.http, 'POST', '/v1/admin/hubs', ADMIN, { hubId, homeId: 'home-daw' });
    expect(created.status).toBe(201);
    const expected: Record<string, Attrs> = {};
    for (let i = 0; i < DEVICES; i++) expected[`d${i}`] = { s: VALUE };
    const ids = Object.keys(expected);
    await Promise.all(Array.from({ length: 8 }, async (_, w) => {
      for (let i = w; i < ids.length; i += 8) {
        const put = await api(node.http, 'PUT', `/v1/hubs/${hubId}/devices/${ids[i]}/desired`, ADMIN, { desired: expected[ids[i]!] });
        expect(put.status).toBe(200);
      }
    }));

    const hub = new HubClient({ url: node.wsUrl, hubId, secret: created.body.secret as string, heartbeat: false });
    clients.push(hub);
    const refusals: ErrorFrame[] = [];
    const sets: CommandFrame[] = [];
    const got: Record<string, Attrs> = {};
    let whole!: () => void;
    const all = new Promise<void>((resolve) => (whole = resolve));
    const take = (d: string, attrs: Attrs) => {
      got[d] = { ...got[d], ...attrs };
      if (ids.every((id) => got[id]?.s === VALUE)) whole();
    };
    hub.on('errorFrame', (e) => refusals.push(e));
    hub.on('frame', (f: ServerToHubFrame) => {
      if (f.t === FrameType.welcome) for (const d in f.dl) take(d, f.dl[d]!);
      if (f.t === FrameType.command && f.m === 'set') {
        sets.push(f);
        take(f.d, f.p as Attrs);
      }
    });
    const welcome = await hub.connect();
    await Promise.race([all, hub.closed.then((info) => Promise.reject(new Error(`closed before every device's desired state came: ${JSON.stringify(info)}; refusals: ${JSON.stringify(refusals.slice(0, 3))}`)))]);
    hub.heartbeat();
    await hub.waitFor((f) => f.t === FrameType.heartbeat, 30_000);
    return { hub, welcome, sets, got, expected, refusals };
  }

  it('a hub answering every set after its welcome is neither refused nor closed, and every device gets its desired state', async () => {
    const { hub, welcome, sets, got, expected, refusals } = await flooded('daw-answers');
    // more than the welcome holds, and more sets than the commands a hub may have in flight
    expect(Object.keys(welcome.dl).length).toBeLessThan(DEVICES);
    expect(sets.length).toBeGreaterThan(32);
    expect(Object.keys(welcome.dl).length + sets.length).toBe(DEVICES);
    expect(got).toEqual(expected);
    expect(refusals).toEqual([]);
    expect(hub.connected).toBe(true);
    // and the session is still there for it: a caller's command is answered
    const res = await api(node.http, 'POST', '/v1/hubs/daw-answers/devices/d0/commands', ADMIN, { set: { s: 'w' } });
    expect(res).toMatchObject({ status: 200, body: { ok: true } });
  });

  it('results for ids the server never sent still spend the budget: refused rate_limited past it, then closed 4004', async () => {
    const { hub, sets, refusals } = await flooded('daw-strays');
    expect(refusals).toEqual([]);
    const sent = new Set(sets.map((f) => f.id));
    const strays: number[] = [];
    for (let id = 0x7fffffff; strays.length < 600; id--) if (!sent.has(id)) strays.push(id);
    for (const id of strays) hub.sendFrame({ t: FrameType.result, id, ok: true });
    expect(await hub.closed).toMatchObject({ code: 4004, reason: 'rate_limited' });
    const limited = refusals.filter((e) => e.e === 'rate_limited');
    // one error frame a refusal, each naming the stray it refused; the burst's 201st closes instead
    expect(limited).toHaveLength(200);
    expect(limited.every((e) => e.ref !== undefined && strays.includes(e.ref) && !sent.has(e.ref))).toBe(true);
  });
});
