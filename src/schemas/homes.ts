/**
 * Bodies of a home's data as a whole (src/api/home-routes.ts): its export and its erasure.
 */
import { Type } from '@sinclair/typebox';
import { ID_REGEX, Id } from './common.js';
import { FleetHub, hub7 } from './fleet.js';
import { DeviceShadow, lamp } from './hubs.js';
import { Rule, RULE_EXAMPLE, Scene, SCENE_EXAMPLE } from './rules-replies.js';
import { Settings } from './rules.js';

const { status: _status, ...storedRule } = RULE_EXAMPLE;

const EXPORT_EXAMPLE = {
  homeId: 'home-42',
  exportedAt: '2025-01-31T09:00:00.000Z',
  settings: { timeZone: 'Europe/Berlin' },
  hubs: [{ ...hub7, devices: { 'lamp-1': lamp } }],
  rules: [storedRule],
  scenes: [SCENE_EXAMPLE],
  events: [{ epoch: 'k2x9', offset: 41, event: { op: 'evt', kind: 'state', home: 'home-42', hub: 'hub-7', device: 'lamp-1', attrs: { on: true }, version: 12, ts: 1_738_310_400_000 } }],
};

/** @param max the node's largest command timeout (ms) */
export const HomeExport = (max: number) =>
  Type.Object(
    {
      homeId: Id('the home'),
      exportedAt: Type.String({ description: 'when this document was made, ISO 8601' }),
      settings: Settings,
      hubs: Type.Array(
        Type.Composite([FleetHub, Type.Object({ devices: Type.Record(Type.String({ pattern: ID_REGEX }), DeviceShadow, { description: 'device id → its shadow' }) })], {
          title: 'ExportedHub',
          description: 'A hub of the home as the operator sees it (never its secret), with every device’s shadow',
        }),
        { description: 'every hub of the home, in id order' },
      ),
      rules: Type.Array(Type.Omit(Rule(max), ['status'], { title: 'StoredRule', description: 'A rule as stored', examples: [storedRule] }), { description: 'every rule of the home' }),
      scenes: Type.Array(Scene(max), { description: 'every scene of the home' }),
      events: Type.Array(
        Type.Object(
          {
            epoch: Type.String({ description: 'the history the offset belongs to' }),
            offset: Type.Integer({ minimum: 1, description: 'the event’s place in the home’s history' }),
            event: Type.Unknown({ description: 'the event as apps get it (`evt` of the app socket, PROTOCOL.md), without `pos`' }),
          },
          { title: 'StoredEvent', description: 'One event of the home’s history' },
        ),
        { description: 'the events the history still keeps (TIER_HISTORY_SIZE, TIER_HISTORY_MAX_AGE_S), oldest first' },
      ),
    },
    { title: 'HomeExport', description: 'Everything the tier keeps of a home but its audit trail (GET /v1/homes/{homeId}/audit)', examples: [EXPORT_EXAMPLE] },
  );

export const EraseHomeReply = Type.Object(
  {
    ok: Type.Literal(true, { description: 'erased' }),
    homeId: Id('the home'),
    tokensRevokedBefore: Type.String({ description: 'ISO 8601: user tokens issued up to this instant no longer grant the home (each keeps its other homes; one left with none is refused), on every node; their app sockets were closed' }),
    hubs: Type.Array(Id('a hub'), { description: 'the hubs deleted (sessions closed, records and shadows gone)' }),
    rules: Type.Integer({ minimum: 0, description: 'rules deleted' }),
    scenes: Type.Integer({ minimum: 0, description: 'scenes deleted' }),
    settingsReset: Type.Boolean({ description: 'the settings were not the defaults and are now' }),
    pushNotifications: Type.Integer({ minimum: 0, description: 'push notifications of the home removed from the queue: queued, waiting for a retry, failed, and (cluster mode) kept as delivered; one being delivered at that moment is left to its outcome' }),
    streamEntries: Type.Integer({ minimum: 0, description: 'entries of the home deleted from the services\' event stream `<prefix>events` (cluster mode), which then holds an `erased` entry for the home; 0 in the embedded default, which has no such stream' }),
  },
  { title: 'EraseHomeReply', description: 'What was erased; zeros when nothing was left', examples: [{ ok: true, homeId: 'home-42', tokensRevokedBefore: '2025-03-02T08:00:00.000Z', hubs: ['hub-7'], rules: 1, scenes: 1, settingsReset: true, pushNotifications: 2, streamEntries: 14 }] },
);
