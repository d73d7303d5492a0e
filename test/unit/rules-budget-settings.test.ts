/**
 * TIER_RULE_HOME_ACTIONS_PER_SEC and TIER_RULE_HOME_NOTIFY_PER_MIN reach a node's rules: set low on
 * an in-process node, a rule past either is refused by that one (its lastError names the setting).
 * The budgets themselves are rules-action-budget.test.ts's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubClient } from '../../load/wire/hub-client.js';
import { api } from '../helpers/server-process.js';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';

const ADMIN = 'admin-token-budget-settings-0123456789';
let node: InProcessNode;
const hubs: HubClient[] = [];

beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'budget-settings-jwt-secret-0123456789ab', { TIER_RULE_HOME_ACTIONS_PER_SEC: '2', TIER_RULE_HOME_NOTIFY_PER_MIN: '1' });
});
afterAll(async () => {
  await Promise.allSettled(hubs.map((h) => h.terminate()));
  await node?.server.close();
});

/** A home with one hub online and one rule on a button press; the rule's stats once it ran. */
async function ranOnce(home: string, actions: unknown[]): Promise<{ actionsRun: number; errors: number; lastError: { message: string } | null }> {
  const hubId = `${home}-hub`;
  const made = await api(node.http, 'POST', '/v1/admin/hubs', ADMIN, { hubId, homeId: home });
  expect(made.status).toBe(201);
  const hub = new HubClient({ url: node.wsUrl, hubId, secret: made.body.secret });
  hubs.push(hub);
  await hub.connect();
  const rule = await api(node.http, 'POST', `/v1/homes/${home}/rules`, ADMIN, { name: 'press', triggers: [{ type: 'event', event: 'press' }], actions });
  expect(rule.status).toBe(201);
  const ruleId = rule.body.rule.id as string;
  await hub.event('btn', 'press');
  const stats = async () => (await api(node.http, 'GET', `/v1/homes/${home}/rules/${ruleId}`, ADMIN)).body.rule.status.stats;
  await expect.poll(async () => (await stats()).actionsRun + (await stats()).errors).toBe(actions.length);
  return stats();
}

describe("a node's rule budgets come from its settings", () => {
  it('TIER_RULE_HOME_NOTIFY_PER_MIN: the second notification of a minute is refused', async () => {
    const notify = { type: 'notify', title: 't', body: 'b' };
    const stats = await ranOnce('bs-notify', [notify, notify]);
    expect(stats).toMatchObject({ actionsRun: 1, errors: 1 });
    expect(stats.lastError?.message).toMatch(/more than 1 notifications within 60 s \(TIER_RULE_HOME_NOTIFY_PER_MIN\)/);
  });

  it('TIER_RULE_HOME_ACTIONS_PER_SEC: the third desired change of a second is refused', async () => {
    const desired = (device: string) => ({ type: 'desired', hub: 'bs-actions-hub', device, desired: { on: true } });
    const stats = await ranOnce('bs-actions', [desired('a'), desired('b'), desired('c')]);
    expect(stats).toMatchObject({ actionsRun: 2, errors: 1 });
    expect(stats.lastError?.message).toMatch(/more than 2 device commands and notifications within a second \(TIER_RULE_HOME_ACTIONS_PER_SEC\)/);
  });
});
