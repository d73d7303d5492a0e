/**
 * The automation HTTP API on a real uWS app in this process: auth, CRUD, validation naming the
 * field, dry run, scene runs, settings.
 */
import type { TSchema } from '@sinclair/typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { Authenticator } from '../../src/auth/authenticator.js';
import { RulePool } from '../../src/rules/pool.js';
import { mountRulesApi } from '../../src/api/rules-routes.js';
import { compile } from '../../src/schemas/check.js';
import { ErrorBody } from '../../src/schemas/common.js';
import { Deleted, DryRunReply, RuleList, RuleReply, RuleSaved, SceneDeleted, SceneList, SceneReply, SceneRunReply, SettingsReply } from '../../src/schemas/rules-replies.js';
import { loadUws, type us_listen_socket } from '../../src/transport/uws.js';
import { api } from '../helpers/server-process.js';
import { HALL_LIGHT, rig, silentLog, type Rig } from './rules-fixtures.js';

const ADMIN = 'rules-api-admin-token-0123456789';
const auth = new Authenticator(ADMIN, 'rules-api-jwt-secret-0123456789');
const HUBS: Record<string, string> = { 'home1-hub': 'home1', 'home1-hub2': 'home1', 'home2-hub': 'home2' };

const poolTimers = new TimerWheel();
let pool: RulePool;
let r: Rig;
let base: string;
let socket: us_listen_socket;
let userToken: string;
const binding = loadUws({ requireNative: false });

beforeAll(async () => {
  pool = new RulePool({ timers: poolTimers, threads: 1 });
  r = rig(pool, Date.UTC(2024, 6, 1, 21)); // 23:00 in Berlin
  const app = binding.uws.App();
  mountRulesApi(app, { auth, store: r.store, engine: r.engine, homeOfHub: async (hub) => HUBS[hub] ?? null, log: silentLog, maxBodyBytes: 65_536, now: () => r.clock.now });
  socket = await new Promise<us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('listen failed')))));
  base = `http://127.0.0.1:${binding.uws.us_socket_local_port(socket as never)}`;
  userToken = await auth.issue('alice', ['home1'], 600);
});

afterAll(async () => {
  binding.uws.us_listen_socket_close(socket);
  await r.close();
  await pool.close();
  poolTimers.close();
});

/** A request with the admin token unless another (or null: none) is given. */
function call(method: string, path: string, body?: unknown, token: string | null = ADMIN): Promise<{ status: number; body: any }> {
  return api(base, method, path, token ?? undefined, body);
}

describe('auth', () => {
  it('401 without a token, 403 for a home the user may not see, 200 for the user’s home and the admin', async () => {
    expect(await call('GET', '/v1/homes/home1/rules', undefined, null)).toMatchObject({ status: 401, body: { ok: false, code: 'unauthorized' } });
    expect(await call('GET', '/v1/homes/home2/rules', undefined, userToken)).toMatchObject({ status: 403, body: { code: 'forbidden' } });
    expect(await call('POST', '/v1/homes/home2/scenes/s1/run', undefined, userToken)).toMatchObject({ status: 403 });
    expect(await call('GET', '/v1/homes/home1/rules', undefined, userToken)).toMatchObject({ status: 200, body: { ok: true, rules: [] } });
    expect(await call('GET', '/v1/homes/home2/rules')).toMatchObject({ status: 200 });
  });
});

describe('rules', () => {
  it('create, read, list, update, disable, enable, delete', async () => {
    const created = await call('POST', '/v1/homes/home1/rules', HALL_LIGHT, userToken);
    expect(created.status).toBe(201);
    const rule = created.body.rule;
    expect(rule).toMatchObject({ name: HALL_LIGHT.name, homeId: 'home1', version: 1, enabled: true, cooldownMs: 0, limit: { maxRuns: 20 } });
    expect(rule.status).toMatchObject({ suspendedUntil: null, stats: { evaluated: 0, matched: 0, actionsRun: 0, errors: 0 } });

    expect((await call('GET', `/v1/homes/home1/rules/${rule.id}`)).body.rule).toMatchObject({ id: rule.id, version: 1 });
    expect((await call('GET', '/v1/homes/home1/rules')).body.rules.map((x: { id: string }) => x.id)).toEqual([rule.id]);

    // a client may send back what it read; the server owns id, version and status
    const updated = await call('PUT', `/v1/homes/home1/rules/${rule.id}`, { ...rule, name: 'Renamed', cooldownMs: 1_000 });
    expect(updated).toMatchObject({ status: 200, body: { rule: { id: rule.id, version: 2, name: 'Renamed', cooldownMs: 1_000 } } });

    expect((await call('POST', `/v1/homes/home1/rules/${rule.id}/disable`)).body.rule).toMatchObject({ enabled: false, version: 3 });
    expect((await call('POST', `/v1/homes/home1/rules/${rule.id}/enable`)).body.rule).toMatchObject({ enabled: true, version: 4 });

    expect(await call('DELETE', `/v1/homes/home1/rules/${rule.id}`)).toMatchObject({ status: 200, body: { deleted: rule.id } });
    expect(await call('GET', `/v1/homes/home1/rules/${rule.id}`)).toMatchObject({ status: 404, body: { code: 'not_found' } });
    expect(await call('DELETE', `/v1/homes/home1/rules/${rule.id}`)).toMatchObject({ status: 404 });
    // the rule id of one home is not reachable through another
    const other = (await call('POST', '/v1/homes/home1/rules', HALL_LIGHT)).body.rule;
    expect(await call('GET', `/v1/homes/home2/rules/${other.id}`)).toMatchObject({ status: 404 });
  });

  it('a home holds at most 200 rules: the next create is refused 422 limit_exceeded, a delete makes room', async () => {
    const ids: string[] = [];
    const before = (await call('GET', '/v1/homes/home1/rules')).body.rules.length as number;
    for (let i = before; i < 200; i++) ids.push((await call('POST', '/v1/homes/home1/rules', { ...HALL_LIGHT, name: `r${i}` })).body.rule.id as string);
    const refused = await call('POST', '/v1/homes/home1/rules', HALL_LIGHT, userToken);
    expect(refused).toMatchObject({ status: 422, body: { ok: false, code: 'limit_exceeded', message: expect.stringContaining('maximum of 200 rules') } });
    expect((await call('DELETE', `/v1/homes/home1/rules/${ids.pop()!}`)).status).toBe(200);
    ids.push((await call('POST', '/v1/homes/home1/rules', HALL_LIGHT, userToken)).body.rule.id as string);
    for (const id of ids) await call('DELETE', `/v1/homes/home1/rules/${id}`);
    expect((await call('GET', '/v1/homes/home1/rules')).body.rules).toHaveLength(before);
  });

  it('refuses bad rules with 400 naming the field', async () => {
    const bad = async (body: unknown) => (await call('POST', '/v1/homes/home1/rules', body)).body;
    expect(await bad({ ...HALL_LIGHT, conditions: ['dev.lux.lux <'] })).toMatchObject({ ok: false, code: 'invalid_field', field: 'conditions[0]' });
    expect(await bad({ ...HALL_LIGHT, triggers: [{ type: 'cron', cron: '0 25 * * *' }] })).toMatchObject({ field: 'triggers[0].cron' });
    expect(await bad({ ...HALL_LIGHT, actions: [{ type: 'command', hub: 'home2-hub', device: 'x', set: { on: true } }] })).toMatchObject({
      field: 'actions[0].hub',
      message: 'actions[0].hub: hub home2-hub is not in home home1',
    });
    expect(await bad({ ...HALL_LIGHT, devices: { lux: { hub: 'ghost-hub', device: 'x' } } })).toMatchObject({ field: 'devices.lux.hub' });
    expect(await bad({ ...HALL_LIGHT, actions: [{ type: 'scene', scene: 'sMissing' }] })).toMatchObject({ field: 'actions[0].scene' });
    const res = await call('POST', '/v1/homes/home1/rules', 'not an object');
    expect(res).toMatchObject({ status: 400, body: { field: 'body' } });
  });

  it('refuses __proto__ and constructor keys in a body with 400 naming the field; a devices alias __proto__ is not dropped unchecked', async () => {
    /** the body as raw JSON text: a JS object literal would make `__proto__` its prototype, not a key */
    const raw = (patch: string) => JSON.stringify({ ...HALL_LIGHT, devices: {}, conditions: [] }).replace(/^\{/, `{${patch},`);
    const post = (text: string) => call('POST', '/v1/homes/home1/rules', text);
    const before = (await call('GET', '/v1/homes/home1/rules')).body.rules.length;
    expect(await post(raw('"__proto__": {"enabled": false}'))).toMatchObject({ status: 400, body: { code: 'invalid_field', field: '__proto__' } });
    expect(await post(raw('"constructor": {"name": "x"}'))).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'constructor' } });
    // a hub of another home behind the alias __proto__: it used to be stored as a rule without that
    // device (201), the hub never checked; now it is refused
    const hidden = await post(JSON.stringify({ ...HALL_LIGHT, devices: {}, conditions: [] }).replace('"devices":{}', '"devices":{"__proto__":{"hub":"home2-hub","device":"door"}}'));
    expect(hidden).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'devices.__proto__' } });
    expect((await call('GET', '/v1/homes/home1/rules')).body.rules).toHaveLength(before);
  });

  it('aliases named toString and constructor read their own devices', async () => {
    const created = await call('POST', '/v1/homes/home1/rules', {
      ...HALL_LIGHT,
      devices: { toString: { hub: 'home1-hub', device: 'hall-lux' }, constructor: { hub: 'home1-hub2', device: 'door' } },
      conditions: ['dev.toString.lux < 30 && dev.constructor.open == false'],
    });
    expect(created.status).toBe(201);
    expect(created.body.rule.devices).toEqual({ toString: { hub: 'home1-hub', device: 'hall-lux' }, constructor: { hub: 'home1-hub2', device: 'door' } });
    r.hubs.report('home1-hub', 'hall-lux', { lux: 12 });
    r.hubs.report('home1-hub2', 'door', { open: false });
    await r.settle();
    const test = await call('POST', `/v1/homes/home1/rules/${created.body.rule.id}/test`);
    expect(test.body.test).toMatchObject({
      conditions: [{ expr: 'dev.toString.lux < 30 && dev.constructor.open == false', value: true }],
      state: { 'home1-hub/hall-lux': { lux: 12 }, 'home1-hub2/door': { open: false } },
    });
  });

  it('dry run: what the rule would do now, with each condition, doing nothing', async () => {
    await call('PUT', '/v1/homes/home1/settings', { timeZone: 'Europe/Berlin' });
    const rule = (await call('POST', '/v1/homes/home1/rules', HALL_LIGHT)).body.rule;
    r.hubs.report('home1-hub', 'hall-lux', { lux: 10 });
    await r.settle();
    const before = r.hubs.commands.length;
    const test = await call('POST', `/v1/homes/home1/rules/${rule.id}/test`);
    expect(test.status).toBe(200);
    expect(test.body.test).toMatchObject({
      ruleId: rule.id,
      wouldRun: true,
      conditions: [
        { expr: 'between(time.hhmm, "22:00", "06:00")', value: true },
        { expr: 'dev.lux.lux < 30', value: true },
      ],
      actions: HALL_LIGHT.actions,
    });
    const withEvent = await call('POST', `/v1/homes/home1/rules/${rule.id}/test`, { event: { kind: 'state', hub: 'home1-hub', device: 'hall-motion', attrs: { motion: false } } });
    expect(withEvent.body.test).toMatchObject({ triggered: false, wouldRun: false, actions: [] });
    expect(await call('POST', `/v1/homes/home1/rules/${rule.id}/test`, { event: { kind: 'state' } })).toMatchObject({ status: 400, body: { field: 'event.hub' } });
    expect(r.hubs.commands.length).toBe(before);
  });

  it('dry run at a given instant: time.* read then, in the home zone', async () => {
    await call('PUT', '/v1/homes/home1/settings', { timeZone: 'Europe/Berlin' });
    const rule = (await call('POST', '/v1/homes/home1/rules', { ...HALL_LIGHT, actions: [{ type: 'notify', title: 't', body: 'at {{ time.hhmm }}' }] })).body.rule;
    r.hubs.report('home1-hub', 'hall-lux', { lux: 10 });
    await r.settle();
    const at = (when: string) => call('POST', `/v1/homes/home1/rules/${rule.id}/test`, { at: when });
    // the rig's clock says 23:00 in Berlin; noon there is outside 22:00–06:00
    expect((await at('2024-07-01T12:00:00+02:00')).body.test).toMatchObject({ passed: false, conditions: [{ value: false }, { value: true }] });
    expect((await at('2024-07-02T03:30:00Z')).body.test).toMatchObject({ wouldRun: true, actions: [{ type: 'notify', body: 'at 05:30' }] });
    expect(await at('2024-07-01 12:00')).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'at' } });
    expect(await at('2024-07-01T12:00:00')).toMatchObject({ status: 400, body: { field: 'at' } });
    await call('DELETE', `/v1/homes/home1/rules/${rule.id}`);
  });
});

describe('scenes', () => {
  it('create, run, disable (run refused), update, delete', async () => {
    const created = await call('POST', '/v1/homes/home1/scenes', {
      name: 'Good night',
      commands: [
        { hub: 'home1-hub', device: 'all-lights', set: { on: false } },
        { hub: 'home1-hub2', device: 'front-door', method: 'lock' },
      ],
    });
    expect(created.status).toBe(201);
    const scene = created.body.scene;
    expect(scene).toMatchObject({ name: 'Good night', version: 1, enabled: true });
    const run = await call('POST', `/v1/homes/home1/scenes/${scene.id}/run`, undefined, userToken);
    expect(run).toMatchObject({
      status: 200,
      body: {
        ok: true,
        allOk: true,
        sceneId: scene.id,
        results: [
          { hub: 'home1-hub', device: 'all-lights', ok: true },
          { hub: 'home1-hub2', device: 'front-door', ok: true },
        ],
      },
    });
    expect(r.hubs.sent().slice(-2)).toEqual(['all-lights:{"set":{"on":false}}', 'front-door:{"method":"lock","params":{}}']);
    expect((await call('POST', `/v1/homes/home1/scenes/${scene.id}/disable`)).body.scene).toMatchObject({ enabled: false, version: 2 });
    expect(await call('POST', `/v1/homes/home1/scenes/${scene.id}/run`)).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'enabled' } });
    const updated = await call('PUT', `/v1/homes/home1/scenes/${scene.id}`, { name: 'Night', enabled: true, commands: [{ hub: 'home1-hub', device: 'a', set: { on: false } }] });
    expect(updated.body.scene).toMatchObject({ name: 'Night', version: 3 });
    expect((await call('GET', '/v1/homes/home1/scenes')).body.scenes).toHaveLength(1);
    expect(await call('POST', '/v1/homes/home1/scenes', { name: 'x', commands: [{ hub: 'home2-hub', device: 'a', set: { on: true } }] })).toMatchObject({
      status: 400,
      body: { field: 'commands[0].hub' },
    });
    expect(await call('DELETE', `/v1/homes/home1/scenes/${scene.id}`)).toMatchObject({ status: 200 });
    expect(await call('POST', `/v1/homes/home1/scenes/${scene.id}/run`)).toMatchObject({ status: 404 });
  });
});

describe('warnings about state triggers at save', () => {
  it('names triggers the reported state says cannot fire, and saves the rule', async () => {
    r.hubs.report('home1-hub', 'warn-sensor', { motion: false, temp: 21.5, mode: 'auto' });
    await r.settle();
    const trigger = (t: Record<string, unknown>) => ({ type: 'state', hub: 'home1-hub', device: 'warn-sensor', ...t });
    const created = await call('POST', '/v1/homes/home1/rules', {
      name: 'w',
      triggers: [
        trigger({ attr: 'motion', to: 'true' }),
        trigger({ attr: 'motion', above: 1 }),
        trigger({ attr: 'motoin', to: true }),
        { type: 'state', hub: 'home1-hub', device: 'no-such-device', attr: 'on' },
        trigger({ attr: 'temp', above: 25 }),
        trigger({ attr: 'mode', from: 'auto', to: 'off' }),
      ],
      actions: [{ type: 'notify', title: 't', body: 'b' }],
    });
    expect(created.status).toBe(201);
    expect(compile(RuleSaved(60_000)).problem(created.body)).toBeNull();
    expect(created.body.warnings.map((w: { field: string }) => w.field)).toEqual(['triggers[0].to', 'triggers[1].above', 'triggers[2].attr', 'triggers[3].device']);
    expect(created.body.warnings[0].message).toMatch(/"true" is a string, "motion" is a boolean/);
    expect(created.body.warnings[2].message).toMatch(/no attribute "motoin" \(it has: motion, temp, mode\)/);
    const fixed = await call('PUT', `/v1/homes/home1/rules/${created.body.rule.id}`, { name: 'w', triggers: [trigger({ attr: 'motion', to: true })], actions: [{ type: 'notify', title: 't', body: 'b' }] });
    expect(fixed).toMatchObject({ status: 200, body: { warnings: [] } });
    await call('DELETE', `/v1/homes/home1/rules/${created.body.rule.id}`);
  });
});

describe('deleting a scene that rules run', () => {
  it('is done and answers the rules that run it (left unchanged), as a hub move does', async () => {
    const scene = (await call('POST', '/v1/homes/home1/scenes', { name: 'Away', commands: [{ hub: 'home1-hub', device: 'a', set: { on: false } }] })).body.scene;
    const other = (await call('POST', '/v1/homes/home1/scenes', { name: 'Other', commands: [{ hub: 'home1-hub', device: 'a', set: { on: true } }] })).body.scene;
    const runs = (await call('POST', '/v1/homes/home1/rules', { name: 'Leaving', triggers: [{ type: 'event', event: 'leave' }], actions: [{ type: 'scene', scene: scene.id }] })).body.rule;
    const not = (await call('POST', '/v1/homes/home1/rules', { name: 'Coming', triggers: [{ type: 'event', event: 'come' }], actions: [{ type: 'scene', scene: other.id }] })).body.rule;
    const deleted = await call('DELETE', `/v1/homes/home1/scenes/${scene.id}`);
    expect(deleted).toMatchObject({ status: 200, body: { deleted: scene.id, rules: [{ id: runs.id, name: 'Leaving' }] } });
    expect(compile(SceneDeleted).problem(deleted.body)).toBeNull();
    expect((await call('DELETE', `/v1/homes/home1/scenes/${other.id}`)).body.rules).toEqual([{ id: not.id, name: 'Coming' }]);
    for (const id of [runs.id, not.id]) await call('DELETE', `/v1/homes/home1/rules/${id}`);
  });
});

describe('homes and ids named like Object.prototype members', () => {
  it('unknown rule and scene ids answer 404; each such home has its own rules and settings', async () => {
    for (const id of ['toString', 'valueOf', 'hasOwnProperty']) {
      expect(await call('GET', `/v1/homes/home1/rules/${id}`), id).toMatchObject({ status: 404, body: { code: 'not_found' } });
      expect(await call('POST', `/v1/homes/home1/rules/${id}/enable`), id).toMatchObject({ status: 404 });
      expect(await call('DELETE', `/v1/homes/home1/scenes/${id}`), id).toMatchObject({ status: 404 });
      expect(await call('POST', `/v1/homes/home1/scenes/${id}/run`), id).toMatchObject({ status: 404 });
      expect(await call('GET', `/v1/homes/${id}/rules`), id).toMatchObject({ status: 200, body: { homeId: id, rules: [] } });
    }
    expect(await call('PUT', '/v1/homes/toString/settings', { timeZone: 'Asia/Tokyo' })).toMatchObject({ status: 200 });
    expect((await call('GET', '/v1/homes/toString/settings')).body.settings).toEqual({ timeZone: 'Asia/Tokyo' });
    expect((await call('GET', '/v1/homes/valueOf/settings')).body.settings).toEqual({ timeZone: 'UTC' });
    // the ids the object model reserves are not ids at all
    for (const id of ['__proto__', 'constructor', 'prototype']) {
      expect(await call('GET', `/v1/homes/${id}/rules`), id).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'homeId' } });
      expect(await call('GET', `/v1/homes/home1/rules/${id}`), id).toMatchObject({ status: 400, body: { code: 'invalid_field', field: 'ruleId' } });
    }
  });
});

describe('settings', () => {
  it('time zone round trip; a bad zone names the field', async () => {
    expect(await call('PUT', '/v1/homes/home2/settings', { timeZone: 'Asia/Tokyo' })).toMatchObject({ status: 200, body: { settings: { timeZone: 'Asia/Tokyo' } } });
    expect((await call('GET', '/v1/homes/home2/settings')).body.settings).toEqual({ timeZone: 'Asia/Tokyo' });
    expect(await call('PUT', '/v1/homes/home2/settings', { timeZone: 'Nowhere/City' })).toMatchObject({ status: 400, body: { field: 'timeZone' } });
  });
});

describe('answers match the schemas the API document shows', () => {
  it('rules, lists, dry runs, scenes, scene runs, settings, deletions and errors', async () => {
    const max = 60_000;
    const matches = (schema: TSchema, res: { status: number; body: unknown }) => expect(compile(schema).problem(res.body), JSON.stringify(res.body)).toBeNull();
    const created = await call('POST', '/v1/homes/home1/rules', HALL_LIGHT);
    matches(RuleReply(max), created);
    const id = created.body.rule.id as string;
    matches(RuleList(max), await call('GET', '/v1/homes/home1/rules'));
    matches(RuleReply(max), await call('POST', `/v1/homes/home1/rules/${id}/disable`));
    matches(DryRunReply, await call('POST', `/v1/homes/home1/rules/${id}/test`));
    const scene = await call('POST', '/v1/homes/home1/scenes', { name: 'Lights', commands: [{ hub: 'home1-hub', device: 'a', set: { on: true } }, { hub: 'home1-hub', device: 'b', method: 'blink' }] });
    matches(SceneReply(max), scene);
    matches(SceneList(max), await call('GET', '/v1/homes/home1/scenes'));
    matches(SceneRunReply, await call('POST', `/v1/homes/home1/scenes/${scene.body.scene.id}/run`));
    matches(SettingsReply, await call('GET', '/v1/homes/home1/settings'));
    matches(Deleted, await call('DELETE', `/v1/homes/home1/rules/${id}`));
    matches(ErrorBody, await call('GET', `/v1/homes/home1/rules/${id}`));
  });
});
