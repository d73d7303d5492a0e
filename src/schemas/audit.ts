/**
 * The audit trail as the API answers it (src/api/audit-routes.ts): one entry per control action,
 * as proto/subjects.ts `AuditEntry` has it and `audit.events` carries it.
 */
import { Type } from '@sinclair/typebox';

const text = (description: string) => Type.String({ maxLength: 256, description });

const example = {
  id: 'm6kbk1vk0-000001-9f2c4a7e1b',
  at: 1738310400000,
  actor: { kind: 'user', sub: 'alice' },
  from: { ip: '203.0.113.7', node: 'node-a' },
  action: 'command',
  homeId: 'home-42',
  hubId: 'hub-7',
  deviceId: 'lamp-1',
  outcome: 'ok',
  detail: 'set on,level',
};

const { from: _from, ...homeExample } = example;

export const AuditEntryView = Type.Object(
  {
    id: text('unique id of the entry'),
    at: Type.Integer({ minimum: 0, description: 'when the action ended, ms since the epoch (the recording node’s clock)' }),
    actor: Type.Object(
      {
        kind: Type.Union([Type.Literal('admin'), Type.Literal('user'), Type.Literal('rule'), Type.Literal('system')], { description: 'the admin token, a user token, a rule, the node itself' }),
        sub: Type.Optional(text('the user token’s `sub`, or the rule’s id')),
      },
      { description: 'who acted' },
    ),
    from: Type.Optional(
      Type.Object(
        { ip: Type.Optional(text('the caller’s address (a proxy’s, behind one); none for a rule')), node: text('the node that handled the action') },
        { description: 'from where; left out for a home’s users (`GET /v1/homes/{homeId}/audit` with a user token): the addresses of the home’s other users and of support staff are not theirs to see' },
      ),
    ),
    action: text('what: `command`, `desired.set`, `rule.create` … `rule.disable`, `scene.create` … `scene.run`, `settings.set`, `hub.provision`, `hub.provision_batch`, `hub.patch`, `hub.move`, `hub.delete`, `hub.secret_rotate`, `home.export`, `home.erase`, `token.issue`, `token.revoke`'),
    homeId: Type.Optional(text('the home acted on')),
    hubId: Type.Optional(text('the hub acted on')),
    deviceId: Type.Optional(text('the device acted on')),
    target: Type.Optional(text('the rule, scene or token acted on, or the size of a batch')),
    outcome: text('`ok`, or the error code the caller was answered with'),
    requestId: Type.Optional(text('the request id the action carried')),
    detail: Type.Optional(text('a short description: the command’s method or the attributes it set, the keys changed, the home a moved hub came from (`hub.move`, not shown to the new home’s users)')),
  },
  { title: 'AuditEntry', description: 'One control action', examples: [example] },
);

export const AuditReply = Type.Object(
  {
    entries: Type.Array(AuditEntryView, { description: 'newest first' }),
    next: Type.Union([Type.String(), Type.Null()], { description: 'the cursor of the next (older) page (`cursor=`), null on the last; a page may be short, even empty, when filters skip many entries' }),
  },
  {
    title: 'AuditReply',
    description: 'One page of the audit trail',
    // the admin's page, then a home user's (no `from`)
    examples: [
      { entries: [example], next: 'WzE3MzgzMTA0MDAwMDAsIjBiNmY3YzFlIl0' },
      { entries: [{ id: 'm6kbk2a10-000002-4b7d0c9e3a', at: 1738310460000, actor: { kind: 'admin' }, action: 'hub.move', homeId: 'home-42', hubId: 'hub-9', outcome: 'ok' }, homeExample], next: null },
    ],
  },
);
