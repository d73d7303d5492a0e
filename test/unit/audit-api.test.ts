/**
 * The audit trail through the API, on a node started in-process on the memory ports: commands
 * (HTTP, app socket, rule), desired changes, rule and scene edits and runs, fleet actions and
 * token issue and revocation recorded with who, from where, on what and the outcome; read back
 * with filters and a cursor by the admin (every home) and a home's users (their home only, others
 * 403); every entry published on `audit.events` as the AsyncAPI document describes it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../../load/wire/hub-client.js';
import { subjects, type AuditEntry } from '../../proto/subjects.js';
import { decodeValue } from '../../src/protocol/codec.js';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';
import { api } from '../helpers/server-process.js';
import { AppSocket } from '../helpers/app-socket.js';
import { misfit } from '../helpers/asyncapi.js';
import { AuditTrail } from '../../src/actors/audit-trail.js';
import { auditQuery } from '../../src/api/audit-routes.js';
import { createLogger } from '../../src/log/logger.js';

const ADMIN = 'audit-admin-token-0123456789';
/** the loopback address as uWS writes it (IPv4, or IPv6 in full hex) */
const LOCAL = /127\.0\.0\.1|7f00:0{0,3}1$|^[0:]*1$/;

let node: InProcessNode;
let http: string;
let hub: HubClient;
let alice: string;
let mallory: string;
/** every entry published on `audit.events`, and waiters for the next ones */
const published: AuditEntry[] = [];
let waiters: Array<{ pred: (e: AuditEntry) => boolean; resolve: (e: AuditEntry) => void }> = [];
const publishedWhere = (pred: (e: AuditEntry) => boolean): Promise<AuditEntry> => {
  const seen = published.find(pred);
  return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ pred, resolve }));
};

const admin = (method: string, path: string, body?: unknown) => api(http, method, path, ADMIN, body);
const audit = async (token: string, path: string) => api(http, 'GET', path, token);

beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'audit-jwt-secret-0123456789abcdef');
  http = node.http;
  node.ports.bus.subscribe(subjects.auditEvents, (msg) => {
    const e = decodeValue(msg.data) as AuditEntry;
    published.push(e);
    waiters = waiters.filter((w) => (w.pred(e) ? (w.resolve(e), false) : true));
  });
  const res = await admin('POST', '/v1/admin/hubs', { hubId: 'au-hub', homeId: 'au-home' });
  expect(res.status).toBe(201);
  hub = new HubClient({ url: node.wsUrl, hubId: 'au-hub', secret: res.body.secret });
  await hub.connect();
  alice = (await admin('POST', '/v1/admin/tokens', { sub: 'alice', homes: ['au-home'] })).body.token;
  mallory = (await admin('POST', '/v1/admin/tokens', { sub: 'mallory', homes: ['au-other'] })).body.token;
});

afterAll(async () => {
  await hub?.terminate();
  await node?.server.close();
});

describe('recording', () => {
  it('an HTTP command: the user, the address, the node, the hub, device and home, the outcome', async () => {
    const res = await api(http, 'POST', '/v1/hubs/au-hub/devices/lamp/commands', alice, { set: { on: true } });
    expect(res.status).toBe(200);
    const page = await audit(ADMIN, '/v1/admin/audit?action=command&actor=alice&limit=1');
    expect(page.status).toBe(200);
    expect(page.body.entries).toEqual([
      { id: expect.any(String), at: expect.any(Number), actor: { kind: 'user', sub: 'alice' }, from: { ip: expect.stringMatching(LOCAL), node: expect.any(String) }, action: 'command', homeId: 'au-home', hubId: 'au-hub', deviceId: 'lamp', outcome: 'ok', requestId: expect.any(String), detail: 'set on' },
    ]);
  });

  it('a refused command is recorded with its error code, without the home the caller may not see', async () => {
    const res = await api(http, 'POST', '/v1/hubs/au-hub/devices/lamp/commands', mallory, { set: { on: true } });
    expect(res.status).toBe(403);
    const [entry] = (await audit(ADMIN, '/v1/admin/audit?actor=mallory&limit=1')).body.entries;
    expect(entry).toMatchObject({ actor: { kind: 'user', sub: 'mallory' }, action: 'command', hubId: 'au-hub', outcome: 'forbidden' });
    expect(entry.homeId).toBeUndefined();
  });

  it("a refused rule change, export or erasure of another home is the caller's entry alone: nothing in that home's trail, no target of the caller's text", async () => {
    const text = encodeURIComponent('call +1-555-0100\n\u202e' + 'x'.repeat(300));
    expect((await api(http, 'POST', `/v1/homes/au-home/rules/${text}/disable`, mallory)).status).toBe(403);
    expect((await api(http, 'POST', '/v1/homes/au-home/rules/r1/disable', mallory)).status).toBe(403);
    expect((await api(http, 'GET', '/v1/homes/au-home/export', mallory)).status).toBe(403);
    expect((await api(http, 'DELETE', '/v1/admin/homes/au-home', mallory)).status).toBe(403);
    const mine = (await audit(ADMIN, '/v1/admin/audit?actor=mallory&limit=4')).body.entries as AuditEntry[];
    expect(mine.map((e) => `${e.action} ${e.outcome} ${e.target ?? '-'} ${e.homeId ?? '-'}`)).toEqual(['home.erase forbidden - -', 'home.export forbidden - -', 'rule.disable forbidden r1 -', 'rule.disable forbidden - -']);
    const home = (await audit(alice, '/v1/homes/au-home/audit?limit=500')).body.entries as AuditEntry[];
    expect(home.filter((e) => e.actor.sub === 'mallory')).toEqual([]);
  });

  it('an app socket command, a desired change, rule and scene edits, a scene run, tokens and fleet actions', async () => {
    const app = new AppSocket(`${node.wsUrl}/app/v1?token=${alice}`);
    await app.opened();
    expect((await app.request({ op: 'cmd', hub: 'au-hub', device: 'fan', set: { speed: 2 } })).op).toBe('ok');
    app.close();
    expect((await api(http, 'PUT', '/v1/hubs/au-hub/devices/lamp/desired', alice, { desired: { level: 40 } })).status).toBe(200);
    const scene = await api(http, 'POST', '/v1/homes/au-home/scenes', alice, { name: 'Evening', commands: [{ hub: 'au-hub', device: 'lamp', set: { on: true } }] });
    expect(scene.status).toBe(201);
    const sceneId = scene.body.scene.id as string;
    expect((await api(http, 'POST', `/v1/homes/au-home/scenes/${sceneId}/run`, alice)).status).toBe(200);
    const rule = await api(http, 'POST', '/v1/homes/au-home/rules', alice, { name: 'Button', triggers: [{ type: 'state', hub: 'au-hub', device: 'button', attr: 'pressed', to: true }], actions: [{ type: 'command', hub: 'au-hub', device: 'lamp', set: { on: false } }] });
    expect(rule.status).toBe(201);
    const ruleId = rule.body.rule.id as string;
    expect((await api(http, 'DELETE', `/v1/homes/au-home/rules/nope`, alice)).status).toBe(404);
    expect((await admin('PATCH', '/v1/admin/hubs/au-hub', { labels: { site: 'x' } })).status).toBe(200);
    expect((await admin('POST', '/v1/admin/tokens/revoke', { jti: 'some-jti' })).status).toBe(200);

    const trail = (await audit(ADMIN, '/v1/admin/audit?limit=500')).body.entries as AuditEntry[];
    const line = (e: AuditEntry) => `${e.actor.sub ?? e.actor.kind} ${e.action} ${e.target ?? e.deviceId ?? e.hubId ?? ''} ${e.outcome}`;
    // newest first
    expect(trail.slice(0, 8).map(line)).toEqual([
      'admin token.revoke jti some-jti ok',
      'admin hub.patch au-hub ok',
      'alice rule.delete nope not_found',
      `alice rule.create ${ruleId} ok`,
      `alice scene.run ${sceneId} ok`,
      `alice scene.create ${sceneId} ok`,
      'alice desired.set lamp ok',
      'alice command fan ok',
    ]);
    expect(trail.map(line)).toContain('admin hub.provision au-hub ok');
    expect(trail.map(line)).toContain('admin token.issue alice ok');
    expect(trail.find((e) => e.action === 'token.issue' && e.target === 'alice')!.detail).toMatch(/^jti [0-9a-f-]{36}; homes au-home; ttl 3600s$/);

    // a rule's command: the rule is the actor, with no address
    await hub.report({ button: { pressed: true } });
    const byRule = await publishedWhere((e) => e.actor.kind === 'rule');
    expect(byRule).toMatchObject({ actor: { kind: 'rule', sub: ruleId }, action: 'command', homeId: 'au-home', hubId: 'au-hub', deviceId: 'lamp', outcome: 'ok' });
    expect(byRule.from.ip).toBeUndefined();
  });

  it('every entry is published on audit.events as the AsyncAPI document describes it', async () => {
    const stored = (await audit(ADMIN, '/v1/admin/audit?limit=500')).body.entries as AuditEntry[];
    expect(published.length).toBeGreaterThanOrEqual(stored.length);
    for (const e of stored) expect(published.find((p) => p.id === e.id), e.action).toEqual(e);
    for (const e of published) expect(misfit('publishAudit', e), JSON.stringify(e)).toEqual([]);
  });
});

describe('reading', () => {
  it('a home’s users read their home’s trail; another home’s user and the trail of every home are refused', async () => {
    const mine = await audit(alice, '/v1/homes/au-home/audit?limit=500');
    expect(mine.status).toBe(200);
    expect(mine.body.entries.length).toBeGreaterThan(3);
    expect(mine.body.entries.every((e: AuditEntry) => e.homeId === 'au-home')).toBe(true);
    expect((await audit(mallory, '/v1/homes/au-home/audit')).status).toBe(403);
    expect((await audit(alice, '/v1/admin/audit')).status).toBe(403);
    expect((await audit(ADMIN, '/v1/homes/au-home/audit?limit=1')).body.entries).toHaveLength(1);
    expect((await audit(mallory, '/v1/homes/au-other/audit')).body).toEqual({ entries: [], next: null });
  });

  it('filters, and pages with the cursor without repeating or skipping', async () => {
    const everything = (await audit(ADMIN, '/v1/admin/audit?limit=500')).body.entries as AuditEntry[];
    const paged: AuditEntry[] = [];
    let next: string | null = null;
    do {
      const page = await audit(ADMIN, `/v1/admin/audit?limit=3${next ? `&cursor=${encodeURIComponent(next)}` : ''}`);
      expect(page.body.entries.length).toBeLessThanOrEqual(3);
      paged.push(...page.body.entries);
      next = page.body.next;
    } while (next !== null);
    expect(paged.map((e) => e.id)).toEqual(everything.map((e) => e.id));
    const errors = (await audit(ADMIN, '/v1/admin/audit?outcome=error&limit=500')).body.entries as AuditEntry[];
    expect(errors.map((e) => e.outcome).sort()).toEqual(everything.filter((e) => e.outcome !== 'ok').map((e) => e.outcome).sort());
    expect(errors.length).toBeGreaterThanOrEqual(2);
    const rules = (await audit(alice, '/v1/homes/au-home/audit?action=rule.&limit=500')).body.entries as AuditEntry[];
    expect(rules.map((e) => e.action)).toEqual(['rule.delete', 'rule.create']);
    const future = new Date(Date.now() + 60_000).toISOString();
    expect((await audit(ADMIN, `/v1/admin/audit?since=${future}`)).body).toEqual({ entries: [], next: null });
    expect((await audit(ADMIN, `/v1/admin/audit?until=0`)).body.entries).toEqual([]);
  });

  it("answers with the node's request ids, as every API route does", async () => {
    const res = await fetch(`${http}/v1/admin/audit?limit=1`, { headers: { authorization: `Bearer ${ADMIN}` } });
    const [entry] = ((await res.json()) as { entries: AuditEntry[] }).entries;
    // generated by the node's access log: `<node>-<random>-<counter>`, not a stand-in's `node-…`
    expect(res.headers.get('x-request-id')).toMatch(new RegExp(`^${entry!.from.node.replace(/[^A-Za-z0-9]/g, '.')}-[0-9a-f]{6}-`));
    const echoed = await fetch(`${http}/v1/admin/audit?limit=1`, { headers: { authorization: `Bearer ${ADMIN}`, 'x-request-id': 'audit-read-1' } });
    expect(echoed.headers.get('x-request-id')).toBe('audit-read-1');
  });

  it('refuses a bad query naming the field', async () => {
    expect((await audit(ADMIN, '/v1/admin/audit?limit=0')).body).toMatchObject({ code: 'invalid_field', field: 'limit' });
    expect((await audit(ADMIN, '/v1/admin/audit?limit=501')).body).toMatchObject({ code: 'invalid_field', field: 'limit' });
    expect((await audit(ADMIN, '/v1/admin/audit?since=yesterday')).body).toMatchObject({ code: 'invalid_field', field: 'since' });
    expect((await audit(alice, '/v1/homes/__proto__/audit')).status).toBe(400);
  });

  it('reads since and until as RFC 3339 or ms since the epoch, refusing every other form naming the parameter', async () => {
    const hostile = [
      '%201', // " 1": Date.parse reads the year 2001
      '1%20', 'Tuesday%205', '12%2F31%2F2025', '2026-13-01T00:00:00Z', '2026-02-30T00:00:00Z', '2026-01-01T24:00:00Z', '2026-01-01',
      '%2B275760-09-13T00:00:00Z', '10000-01-01T00:00:00Z', '9999999999999999', '-1', '1e3', '0x10',
      '%ZZ', '%', '%E0%A4%A', '2026-01-01T00:00:00%ZZ', '',
      '2026-01-01T00:00:00+01:00', // an unencoded + is a space
    ];
    for (const name of ['since', 'until']) {
      for (const v of hostile) {
        const res = await audit(ADMIN, `/v1/admin/audit?${name}=${v}`);
        expect(res.status, `${name}=${v}`).toBe(400);
        expect(res.body, `${name}=${v}`).toMatchObject({ code: 'invalid_field', field: name });
      }
      const twice = await audit(alice, `/v1/homes/au-home/audit?${name}=0&${name}=2026-01-01T00:00:00Z`);
      expect(twice.status).toBe(400);
      expect(twice.body).toMatchObject({ code: 'invalid_field', field: name });
    }
    const iso = new Date().toISOString();
    expect((await audit(ADMIN, `/v1/admin/audit?since=0&until=${iso.replace('Z', '%2B00:00')}`)).status).toBe(200);
    expect(auditQuery(new URLSearchParams({ since: '1', until: '2026-01-31T09:00:00.5+01:00' }), true)).toMatchObject({ since: 1, until: Date.UTC(2026, 0, 31, 8, 0, 0, 500) });
    // the actor's kind: one of four, through the route too
    expect(auditQuery(new URLSearchParams({ actor: 'admin', actorKind: 'admin' }), true)).toMatchObject({ actor: 'admin', actorKind: 'admin' });
    expect(() => auditQuery(new URLSearchParams({ actorKind: 'robot' }), true)).toThrow(expect.objectContaining({ code: 'invalid_field', field: 'actorKind' }));
    const admins = (await audit(ADMIN, '/v1/admin/audit?actorKind=admin&limit=500')).body.entries as AuditEntry[];
    expect(admins.length).toBeGreaterThan(0);
    expect(admins.every((e) => e.actor.kind === 'admin')).toBe(true);
  });
});

describe('a batch the store cuts short', () => {
  it('records the hubs it made before failing, each as made, and says so in the batch entry', async () => {
    const registry = node.ports.registry;
    const create = registry.create.bind(registry);
    let made = 0;
    // the store fails at the fourth hub of the batch
    registry.create = async (record) => {
      if (++made === 4) throw new Error('store away');
      return create(record);
    };
    try {
      const hubs = Array.from({ length: 6 }, (_, i) => ({ hubId: `au-batch-${i}`, homeId: 'au-batch-home' }));
      expect((await admin('POST', '/v1/admin/hubs:batch', { hubs })).status).toBe(500);
    } finally {
      registry.create = create;
    }
    const trail = (await audit(ADMIN, '/v1/admin/audit?limit=500')).body.entries as AuditEntry[];
    const provisioned = trail.filter((e) => e.action === 'hub.provision' && e.homeId === 'au-batch-home').map((e) => e.hubId).sort();
    expect(provisioned).toEqual(['au-batch-0', 'au-batch-1', 'au-batch-2']);
    expect(trail.find((e) => e.action === 'hub.provision_batch' && e.outcome !== 'ok')).toMatchObject({ target: '6 hubs', detail: 'created 3, then stopped: the store failed' });
  });
});

describe('the trail', () => {
  it("logs an entry it could not record with the action and the caller's request id", () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger('info', {}, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
    const trail = new AuditTrail({ node: 'n1', log, store: { record: () => { throw new Error('disk full'); } } as never });
    trail.record({ actor: { kind: 'admin' }, requestId: 'req-audit-9' }, { action: 'hub.delete', hubId: 'h1' }, 'ok');
    expect(lines).toEqual([expect.objectContaining({ msg: 'audit entry not recorded', action: 'hub.delete', requestId: 'req-audit-9' })]);
  });
});
