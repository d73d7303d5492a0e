/**
 * A home's data as a whole, over real nodes (the embedded default; a cluster of two nodes with
 * NATS and Redis, the hubs on one node and the operator on the other): its export holds its hubs
 * with their shadows (never a secret), rules, scenes, settings and stored events, for its users
 * only; its erasure takes the home from its users' tokens (closing the app sockets of tokens left
 * with no home, ending that home's subscription on the others), deletes all of that, closes its hubs' sessions, tells the apps still
 * there, leaves other homes alone, can be sent again, and both are in the audit trail.
 */
import { afterAll, expect, it } from 'vitest';
import type { HubClient } from '../../load/wire/hub-client.js';
import { AppSocket } from '../helpers/app-socket.js';
import { hubWithLamp as lampHub, inBothModes } from '../helpers/both-modes.js';
import { eventually } from '../helpers/eventually.js';
import { api, type ServerProcess } from '../helpers/server-process.js';
import { createLogger } from '../../src/log/logger.js';
import { closeRedis, connectRedis } from '../../src/ports/redis.js';

const ADMIN = 'home-data-admin-token-0123456789';
const JWT = 'home-data-jwt-secret-0123456789abcdef';

function homeDataSteps(mode: 'embedded' | 'cluster', nodes: () => ServerProcess[]): void {
  const at = (i: number) => nodes()[i % nodes().length]!;
  const as = (token: string, method: string, path: string, body?: unknown) => api(at(0).httpUrl, method, path, token, body);
  const admin = (method: string, path: string, body?: unknown) => as(ADMIN, method, path, body);
  const p = mode === 'cluster' ? 'c' : 'e';
  const open: Array<{ terminate(): unknown } | { close(): unknown }> = [];
  const secrets: string[] = [];

  afterAll(async () => {
    await Promise.allSettled(open.map((o) => ('terminate' in o ? o.terminate() : o.close())));
  });

  const userToken = async (homes: string[], sub = `${p}-owner`) => (await admin('POST', '/v1/admin/tokens', { sub, homes })).body.token as string;

  /** The services' event stream of the cluster's Redis, each entry's fields as a map (event bytes as text). */
  async function servicesStream(): Promise<Array<Record<string, string>>> {
    const client = await connectRedis(at(0).env.REDIS_URL!, { name: 'test-home-data-stream', log: createLogger('silent') });
    try {
      const rows = (await client.xrange(`${at(0).env.TIER_REDIS_PREFIX}events`, '-', '+')) as Array<[string, string[]]>;
      return rows.map(([, f]) => Object.fromEntries(f.flatMap((v, i) => (i % 2 ? [] : [[v, f[i + 1]!]]))));
    } finally {
      await closeRedis(client);
    }
  }

  /** A provisioned hub online on node 1 with a lamp that reported `on: true`. */
  async function hubWithLamp(hubId: string, homeId: string): Promise<HubClient> {
    const { hub, secret } = await lampHub(at(0), at(1), ADMIN, hubId, homeId);
    open.push(hub);
    secrets.push(secret);
    return hub;
  }

  /** A rule (turning the lamp off again, with a push notification) and a scene naming `hubId`, in its home. */
  async function automation(homeId: string, hubId: string): Promise<void> {
    const rule = { name: 'Lamp off', triggers: [{ type: 'state', hub: hubId, device: 'lamp', attr: 'on', to: true }], actions: [{ type: 'command', hub: hubId, device: 'lamp', set: { on: false } }, { type: 'notify', title: 'Lamp', body: 'turned off again' }] };
    expect((await admin('POST', `/v1/homes/${homeId}/rules`, rule)).status).toBe(201);
    expect((await admin('POST', `/v1/homes/${homeId}/scenes`, { name: 'All on', commands: [{ hub: hubId, device: 'lamp', set: { on: true } }] })).status).toBe(201);
  }

  it('exports a home whole to its users, erases it for the admin, and leaves the other homes alone', async () => {
    const [home, other] = [`${p}-erased-home`, `${p}-kept-home`];
    const hubs = [await hubWithLamp(`${p}-hub-a`, home), await hubWithLamp(`${p}-hub-b`, home)];
    const kept = await hubWithLamp(`${p}-hub-kept`, other);
    await automation(home, `${p}-hub-a`);
    await automation(other, `${p}-hub-kept`);
    expect((await admin('PUT', `/v1/homes/${home}/settings`, { timeZone: 'Europe/Berlin' })).status).toBe(200);
    const owner = await userToken([home]);
    // the rule fires once: its notification is delivered (the logging sender), and kept as delivered in cluster mode
    await hubs[0]!.report({ lamp: { on: false } });
    await hubs[0]!.report({ lamp: { on: true } });
    await eventually(AbortSignal.timeout(30_000), 'the rule’s push notification', async () => (nodes().some((n) => n.logs.some((l) => l.homeId === home && typeof l.pushId === 'string')) ? true : undefined));

    // the copy: everything kept of the home, for its users; never a hub's secret
    const exported = await as(owner, 'GET', `/v1/homes/${home}/export`);
    expect(exported.status).toBe(200);
    const doc = exported.body;
    expect(doc).toMatchObject({ homeId: home, settings: { timeZone: 'Europe/Berlin' }, rules: [{ name: 'Lamp off', homeId: home }], scenes: [{ name: 'All on' }] });
    expect(doc.hubs.map((h: { hubId: string }) => h.hubId)).toEqual([`${p}-hub-a`, `${p}-hub-b`]);
    expect(doc.hubs[1]).toMatchObject({ online: true, devices: { lamp: { kind: 'switch', model: 'L-1', reported: { on: true } } } });
    expect(doc.rules[0].status).toBeUndefined();
    const states = doc.events.filter((e: { event: { kind: string } }) => e.event.kind === 'state');
    expect([...new Set(states.map((e: { event: { hub: string } }) => e.event.hub))].sort()).toEqual([`${p}-hub-a`, `${p}-hub-b`]);
    const offsets = doc.events.map((e: { offset: number }) => e.offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    for (const secret of secrets) expect(JSON.stringify(doc)).not.toContain(secret);
    expect((await as(await userToken([other]), 'GET', `/v1/homes/${home}/export`)).status).toBe(403);

    // the erasure: the admin's alone. Its users' tokens lose the home first (on either node: a socket
    // whose token keeps another home is narrowed, the others closed), the apps still there are told,
    // its hubs closed for good
    const member = await userToken([home, other], `${p}-member`);
    const sockets = [new AppSocket(`${at(0).wsUrl}/app/v1?token=${owner}`), new AppSocket(`${at(1).wsUrl}/app/v1?token=${member}`), new AppSocket(`${at(0).wsUrl}/app/v1?token=${ADMIN}`)];
    open.push(...sockets);
    for (const app of sockets) {
      await app.opened();
      expect((await app.request({ op: 'sub', home })).op).toBe('ok');
    }
    expect((await as(owner, 'DELETE', `/v1/admin/homes/${home}`)).status).toBe(403);
    const streamBefore = mode === 'cluster' ? await servicesStream() : [];
    const erased = await admin('DELETE', `/v1/admin/homes/${home}`);
    expect(erased.body).toEqual({ ok: true, homeId: home, tokensRevokedBefore: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), hubs: [`${p}-hub-a`, `${p}-hub-b`], rules: 1, scenes: 1, settingsReset: true, pushNotifications: mode === 'cluster' ? 1 : 0, streamEntries: expect.any(Number) });
    if (mode === 'cluster') {
      // the services' stream: the home's entries gone (its hubs' `removed` too), one `erased` entry
      // at its newest offset last, the other home's entries kept
      const before = streamBefore.filter((e) => e.home === home).length;
      expect(before).toBeGreaterThan(0);
      expect(erased.body.streamEntries).toBeGreaterThanOrEqual(before);
      const after = await servicesStream();
      const position = (await admin('GET', `/v1/homes/${other}/export`)).body.events.at(-1);
      expect(after.filter((e) => e.home === home)).toEqual([{ home, epoch: expect.any(String), offset: expect.stringMatching(/^\d+$/), erased: '1' }]);
      expect(after.filter((e) => e.home === other).map((e) => Number(e.offset))).toContain(position.offset);
    } else expect(erased.body.streamEntries).toBe(0);
    // the owner's token named that home alone: closed; the member's keeps its other home: the subscription ends
    expect(await sockets[0]!.closed).toEqual({ code: 4007, reason: 'token_revoked' });
    expect(await sockets[1]!.next((m) => m.op === 'end')).toMatchObject({ op: 'end', home, code: 'forbidden' });
    expect((await sockets[1]!.request({ op: 'ping' })).op).toBe('ok');
    for (const hub of hubs) expect((await hub.closed).code).toBe(4006);
    for (const id of [`${p}-hub-a`, `${p}-hub-b`]) await sockets[2]!.next((m) => m.op === 'evt' && m.kind === 'removed' && m.hub === id);
    expect((await admin('GET', `/v1/admin/hubs/${p}-hub-a`)).status).toBe(404);
    // the owner's token named the erased home only: refused; the member's keeps the other home
    expect((await as(owner, 'GET', `/v1/homes/${other}/export`)).body).toMatchObject({ code: 'unauthorized' });
    expect((await as(member, 'GET', `/v1/homes/${home}/export`)).status).toBe(403);
    expect((await as(member, 'GET', `/v1/homes/${other}/export`)).status).toBe(200);

    // a token minted after the erasure's second grants the home (empty now)
    const revokedS = Date.parse(erased.body.tokensRevokedBefore) / 1000;
    while (Date.now() < (revokedS + 1) * 1000) await new Promise((r) => setTimeout(r, 50));
    const newOwner = await userToken([home], `${p}-new-owner`);
    const after = (await as(newOwner, 'GET', `/v1/homes/${home}/export`)).body;
    expect(after).toMatchObject({ homeId: home, settings: { timeZone: 'UTC' }, hubs: [], rules: [], scenes: [], events: [] });
    // the trail its new household reads starts after the erasure: nothing of the one before (the admin reads it all, below)
    const trail = (await as(newOwner, 'GET', `/v1/homes/${home}/audit`)).body.entries as Array<{ action: string; actor: { sub?: string } }>;
    expect(trail.map((e) => [e.action, e.actor.sub])).toEqual([['home.export', `${p}-new-owner`]]);
    // sent again: nothing left, zeros
    expect((await admin('DELETE', `/v1/admin/homes/${home}`)).body).toEqual({ ok: true, homeId: home, tokensRevokedBefore: expect.any(String), hubs: [], rules: 0, scenes: 0, settingsReset: false, pushNotifications: 0, streamEntries: 0 });

    // the other home: untouched, its hub still online
    const otherDoc = (await admin('GET', `/v1/homes/${other}/export`)).body;
    expect(otherDoc).toMatchObject({ hubs: [{ hubId: `${p}-hub-kept`, online: true }], rules: [{ name: 'Lamp off' }], scenes: [{ name: 'All on' }] });
    expect(otherDoc.events.length).toBeGreaterThan(0);
    await kept.report({ lamp: { on: false } });

    // both in the audit trail, with what they covered; the refused attempts are their callers'
    // entries, not the home's (since 2026-12-06: a user of another home wrote into its trail)
    const audit = (await admin('GET', `/v1/admin/audit?homeId=${home}&action=home.`)).body.entries as Array<{ action: string; detail?: string; outcome: string }>;
    expect(audit.map((e) => [e.action, e.outcome])).toEqual([
      ['home.erase', 'ok'],
      ['home.export', 'ok'],
      ['home.erase', 'ok'],
      ['home.export', 'ok'],
    ]);
    expect(audit[2]!.detail).toBe('2 hubs, 1 rules, 1 scenes, settings reset');
    expect(audit[3]!.detail).toMatch(/^2 hubs, 1 rules, 1 scenes, \d+ events$/);
    const refused = (await admin('GET', '/v1/admin/audit?action=home.&outcome=forbidden&limit=50')).body.entries as Array<{ action: string; homeId?: string }>;
    expect(refused.length).toBeGreaterThanOrEqual(3);
    expect(refused.every((e) => e.homeId === undefined)).toBe(true);
  });

  it('homes named like Object.prototype members are homes like any other (empty, erased to zeros); the reserved ids are refused', async () => {
    for (const reserved of ['__proto__', 'constructor']) {
      expect((await admin('GET', `/v1/homes/${reserved}/export`)).body).toMatchObject({ code: 'invalid_field', field: 'homeId' });
      expect((await admin('DELETE', `/v1/admin/homes/${reserved}`)).body).toMatchObject({ code: 'invalid_field', field: 'homeId' });
    }
    for (const home of ['toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf']) {
      const doc = await admin('GET', `/v1/homes/${home}/export`);
      expect(doc.status, home).toBe(200);
      expect(doc.body, home).toMatchObject({ homeId: home, settings: { timeZone: 'UTC' }, hubs: [], rules: [], scenes: [], events: [] });
      expect((await admin('DELETE', `/v1/admin/homes/${home}`)).body, home).toEqual({ ok: true, homeId: home, tokensRevokedBefore: expect.any(String), hubs: [], rules: 0, scenes: 0, settingsReset: false, pushNotifications: 0, streamEntries: 0 });
    }
  });
}

inBothModes('a home’s data', { ADMIN_TOKEN: ADMIN, JWT_SECRET: JWT }, homeDataSteps);
