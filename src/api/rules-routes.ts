/**
 * The automation API: rules, scenes and settings of a home. Same bearer auth as the rest of the
 * API: the admin reaches every home, a user the homes of the token (others answer 403). Every hub
 * a rule or scene names must belong to the home (`invalid_field` naming the field otherwise).
 *
 *   GET    /v1/homes/{homeId}/rules                    list (with this node's status of each)
 *   POST   /v1/homes/{homeId}/rules                    create → 201
 *   GET    /v1/homes/{homeId}/rules/{ruleId}           read, with status and counters
 *   PUT    /v1/homes/{homeId}/rules/{ruleId}           replace (version + 1)
 *   DELETE /v1/homes/{homeId}/rules/{ruleId}
 *   POST   /v1/homes/{homeId}/rules/{ruleId}/enable    (and /disable)
 *   POST   /v1/homes/{homeId}/rules/{ruleId}/test      dry run: what it would do now, doing nothing
 *   ... the same for /scenes, plus POST /v1/homes/{homeId}/scenes/{sceneId}/run; a scene's DELETE
 *   answers the rules that run it too
 *   GET|PUT /v1/homes/{homeId}/settings                {"timeZone": "Europe/Berlin"}
 */
import { isValidId } from '../../proto/subjects.js';
import { requireHome, type Authenticator } from '../auth/authenticator.js';
import { TierError } from '../errors.js';
import { requireAnswerRoom, route, routeOptions, storeWriteOptions, type HttpCall, type HttpReply, type RouteHost } from '../transport/http.js';
import { optionalJson } from '../transport/http-input.js';
import type { TemplatedApp } from '../transport/uws.js';
import type { RulesEngine } from '../rules/engine.js';
import type { Rule, RuleSpec, Scene } from '../rules/model.js';
import type { RuleStore } from '../ports/rule-store/rule-store.js';
import { parseId } from '../schemas/common.js';
import { byCaller, NO_AUDIT, type AuditTrail, type AuditWhat } from '../actors/audit-trail.js';
import type { AuditAction } from '../ports/audit/audit.js';
import {
  devicesOfRule,
  devicesOfScene,
  validateRuleSpec,
  validateSceneSpec,
  validateSettings,
  validateTestRequest,
  type ValidateOptions,
} from '../rules/validate.js';
import { triggerDevices, triggerWarnings, type RuleWarning } from '../rules/trigger-warnings.js';
import { putHomeSettings } from '../rules/zone-change.js';

export interface RulesApiDeps extends RouteHost {
  auth: Authenticator;
  store: RuleStore;
  engine: RulesEngine;
  /** the home a hub is provisioned in, null for unknown hubs */
  homeOfHub(hubId: string): Promise<string | null>;
  validate?: ValidateOptions;
  now?: () => number;
  /** edits, runs and settings changes are recorded here */
  audit?: AuditTrail;
}

/** Mount before the main API (its catch-all 404 must stay the last route). */
export function mountRulesApi(app: TemplatedApp, deps: RulesApiDeps): void {
  const { auth, store, engine } = deps;
  const opts = routeOptions(deps);
  // routes that wait for the node's store: refused at once while it stalls (api/store-admission.ts)
  const writeOpts = storeWriteOptions(deps);
  const now = deps.now ?? Date.now;

  async function homeOf(call: HttpCall): Promise<string> {
    const principal = await auth.fromHeader(call.authorization, call.remote);
    const homeId = parseId(call.params[0], 'homeId');
    requireHome(principal, homeId);
    return homeId;
  }

  const audit = deps.audit ?? NO_AUDIT;
  /**
   * A change to the home's automation, recorded once the caller is known (refused ones too); the
   * rule or scene id is the path's second id, or what `action` sets as `what.target`. The home is
   * added once the caller may see it, as for a hub: a refused attempt is the caller's entry alone,
   * so a user of another home cannot write into this home's trail (until 2026-12-06 any token
   * could, with a `target` of its own text: a hostile review).
   */
  async function change(call: HttpCall, action: AuditAction, run: (homeId: string, what: AuditWhat) => Promise<HttpReply>): Promise<HttpReply> {
    const principal = await auth.fromHeader(call.authorization, call.remote);
    const homeId = parseId(call.params[0], 'homeId');
    const what: AuditWhat = { action };
    const target = call.params[1];
    if (target !== undefined && isValidId(target)) what.target = target;
    return audit.run(byCaller(principal, call), what, async () => {
      requireHome(principal, homeId);
      what.homeId = homeId;
      return run(homeId, what);
    });
  }

  /** Every hub named must be provisioned in this home. */
  async function checkDevices(homeId: string, refs: Array<{ ref: { hub: string }; field: string }>): Promise<void> {
    const homes = new Map<string, string | null>();
    for (const { ref, field } of refs) {
      if (!homes.has(ref.hub)) homes.set(ref.hub, await deps.homeOfHub(ref.hub));
      if (homes.get(ref.hub) !== homeId) throw new TierError('invalid_field', `${field}: hub ${ref.hub} is not in home ${homeId}`, { field });
    }
  }

  async function checkRule(homeId: string, spec: RuleSpec): Promise<void> {
    await checkDevices(homeId, devicesOfRule(spec));
    for (let i = 0; i < spec.actions.length; i++) {
      const a = spec.actions[i]!;
      if (a.type === 'scene' && !(await store.getScene(homeId, a.scene))) {
        throw new TierError('invalid_field', `actions[${i}].scene: no scene ${a.scene} in home ${homeId}`, { field: `actions[${i}].scene` });
      }
    }
  }

  /** Triggers the reported state says cannot fire; none when the state cannot be read (the save stands). */
  async function warningsFor(spec: RuleSpec): Promise<RuleWarning[]> {
    try {
      return triggerWarnings(spec, await engine.reportedState(triggerDevices(spec)));
    } catch {
      return [];
    }
  }

  // statistics summed over every node (the store's), whichever node answers
  const ruleViews = async (homeId: string, rules: Rule[]) => {
    const status = await engine.statusOf(homeId, rules);
    return rules.map((r) => ({ ...r, status: status.get(r.id)! }));
  };
  const ruleView = async (r: Rule) => (await ruleViews(r.homeId, [r]))[0]!;
  const ok = (status: number, body: Record<string, unknown>): HttpReply => ({ status, body: { ok: true, ...body } });
  const noRule = (homeId: string, ruleId: string) => new TierError('not_found', `no rule ${ruleId} in home ${homeId}`);
  const noScene = (homeId: string, sceneId: string) => new TierError('not_found', `no scene ${sceneId} in home ${homeId}`);

  // ---- rules ----
  route(app, 'get', '/v1/homes/:homeId/rules', async (call) => {
    const homeId = await homeOf(call);
    requireAnswerRoom();
    return ok(200, { homeId, rules: await ruleViews(homeId, await store.listRules(homeId)) });
  }, opts);

  route(app, 'post', '/v1/homes/:homeId/rules', (call) => change(call, 'rule.create', async (homeId, what) => {
    const spec = validateRuleSpec(await call.json(), deps.validate);
    await checkRule(homeId, spec);
    const rule = await store.createRule(homeId, spec);
    what.target = rule.id;
    return ok(201, { rule: await ruleView(rule), warnings: await warningsFor(spec) });
  }), writeOpts);

  route(app, 'get', '/v1/homes/:homeId/rules/:ruleId', async (call) => {
    const homeId = await homeOf(call);
    const ruleId = parseId(call.params[1], 'ruleId');
    const rule = await store.getRule(homeId, ruleId);
    if (!rule) throw noRule(homeId, ruleId);
    return ok(200, { rule: await ruleView(rule) });
  }, opts);

  route(app, 'put', '/v1/homes/:homeId/rules/:ruleId', (call) => change(call, 'rule.update', async (homeId) => {
    const ruleId = parseId(call.params[1], 'ruleId');
    const spec = validateRuleSpec(await call.json(), deps.validate);
    await checkRule(homeId, spec);
    const rule = await store.updateRule(homeId, ruleId, spec);
    if (!rule) throw noRule(homeId, ruleId);
    return ok(200, { rule: await ruleView(rule), warnings: await warningsFor(spec) });
  }), writeOpts);

  route(app, 'del', '/v1/homes/:homeId/rules/:ruleId', (call) => change(call, 'rule.delete', async (homeId) => {
    const ruleId = parseId(call.params[1], 'ruleId');
    if (!(await store.deleteRule(homeId, ruleId))) throw noRule(homeId, ruleId);
    return ok(200, { deleted: ruleId });
  }), writeOpts);

  for (const [verb, enabled] of [['enable', true], ['disable', false]] as const) {
    route(app, 'post', `/v1/homes/:homeId/rules/:ruleId/${verb}`, (call) => change(call, `rule.${verb}`, async (homeId) => {
      const ruleId = parseId(call.params[1], 'ruleId');
      const rule = await store.setRuleEnabled(homeId, ruleId, enabled);
      if (!rule) throw noRule(homeId, ruleId);
      return ok(200, { rule: await ruleView(rule) });
    }), writeOpts);
  }

  route(app, 'post', '/v1/homes/:homeId/rules/:ruleId/test', async (call) => {
    const homeId = await homeOf(call);
    const ruleId = parseId(call.params[1], 'ruleId');
    const { event, prev, at } = validateTestRequest(await optionalJson(call), now());
    return ok(200, { test: await engine.dryRun(homeId, ruleId, event, prev, at) });
  }, opts);

  // ---- scenes ----
  const sceneView = (s: Scene) => s;

  route(app, 'get', '/v1/homes/:homeId/scenes', async (call) => {
    const homeId = await homeOf(call);
    requireAnswerRoom();
    return ok(200, { homeId, scenes: (await store.listScenes(homeId)).map(sceneView) });
  }, opts);

  route(app, 'post', '/v1/homes/:homeId/scenes', (call) => change(call, 'scene.create', async (homeId, what) => {
    const spec = validateSceneSpec(await call.json(), deps.validate);
    await checkDevices(homeId, devicesOfScene(spec));
    const scene = await store.createScene(homeId, spec);
    what.target = scene.id;
    return ok(201, { scene });
  }), writeOpts);

  route(app, 'get', '/v1/homes/:homeId/scenes/:sceneId', async (call) => {
    const homeId = await homeOf(call);
    const sceneId = parseId(call.params[1], 'sceneId');
    const scene = await store.getScene(homeId, sceneId);
    if (!scene) throw noScene(homeId, sceneId);
    return ok(200, { scene });
  }, opts);

  route(app, 'put', '/v1/homes/:homeId/scenes/:sceneId', (call) => change(call, 'scene.update', async (homeId) => {
    const sceneId = parseId(call.params[1], 'sceneId');
    const spec = validateSceneSpec(await call.json(), deps.validate);
    await checkDevices(homeId, devicesOfScene(spec));
    const scene = await store.updateScene(homeId, sceneId, spec);
    if (!scene) throw noScene(homeId, sceneId);
    return ok(200, { scene });
  }), writeOpts);

  route(app, 'del', '/v1/homes/:homeId/scenes/:sceneId', (call) => change(call, 'scene.delete', async (homeId) => {
    const sceneId = parseId(call.params[1], 'sceneId');
    if (!(await store.deleteScene(homeId, sceneId))) throw noScene(homeId, sceneId);
    // reported, not refused: as a hub move reports the rules naming the hub (the caller decides)
    const rules = (await store.listRules(homeId)).filter((r) => r.actions.some((a) => a.type === 'scene' && a.scene === sceneId));
    return ok(200, { deleted: sceneId, rules: rules.map((r) => ({ id: r.id, name: r.name })) });
  }), writeOpts);

  for (const [verb, enabled] of [['enable', true], ['disable', false]] as const) {
    route(app, 'post', `/v1/homes/:homeId/scenes/:sceneId/${verb}`, (call) => change(call, `scene.${verb}`, async (homeId) => {
      const sceneId = parseId(call.params[1], 'sceneId');
      const scene = await store.setSceneEnabled(homeId, sceneId, enabled);
      if (!scene) throw noScene(homeId, sceneId);
      return ok(200, { scene });
    }), writeOpts);
  }

  route(app, 'post', '/v1/homes/:homeId/scenes/:sceneId/run', (call) => change(call, 'scene.run', async (homeId, what) => {
    const sceneId = parseId(call.params[1], 'sceneId');
    const run = await engine.runScene(homeId, sceneId, call.span);
    const failed = run.results.filter((r) => !r.ok);
    what.detail = `${run.results.length - failed.length} of ${run.results.length} commands ok${failed.length > 0 ? `; failed: ${failed.map((f) => `${f.hub}/${f.device} ${f.code ?? ''}`).join(', ')}` : ''}`;
    return ok(200, { ...run, allOk: failed.length === 0 });
  }), opts);

  // ---- settings ----
  route(app, 'get', '/v1/homes/:homeId/settings', async (call) => {
    const homeId = await homeOf(call);
    return ok(200, { homeId, settings: await store.getSettings(homeId) });
  }, opts);

  route(app, 'put', '/v1/homes/:homeId/settings', (call) => change(call, 'settings.set', async (homeId, what) => {
    const settings = validateSettings(await call.json());
    // the trail says what was set: an alarm that moves an hour is traced to its zone's change
    what.detail = `timeZone ${settings.timeZone}`;
    return ok(200, { homeId, settings: await putHomeSettings(store, homeId, settings) });
  }), writeOpts);
}
