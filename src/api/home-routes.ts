/**
 * HTTP routes of a home's data as a whole (src/api/home-data.ts):
 *
 *   GET    /v1/homes/{homeId}/export    everything kept of the home, in one document (its users, the admin)
 *   DELETE /v1/admin/homes/{homeId}     erase it (admin): the home taken from user tokens, then rules,
 *                                        scenes, settings, hubs, stored events (and the services'
 *                                        stream's), push notifications
 *
 * Both are recorded in the audit trail (`home.export`, `home.erase`). An export is built whole in
 * memory (a home's retained events may be TIER_HISTORY_SIZE of them, up to a million): a node
 * builds (and holds for its reader) at most `maxExports` at once and answers others `503 busy`,
 * so repeated requests cannot hold a copy each; nor one while its large answers waiting for
 * readers are at their ceiling (`requireAnswerRoom`). It is built and serialised in slices the
 * loop turns between (src/api/sliced.ts), and a home's next export waits out nine times the
 * loop time of its last one past 50 ms (src/api/export-pace.ts): one home's exports take at most
 * a tenth of the node.
 */
import type { Static } from '@sinclair/typebox';
import { TierError } from '../errors.js';
import { requireAdmin, requireHome, type Authenticator } from '../auth/authenticator.js';
import { byCaller, NO_AUDIT, type AuditTrail, type AuditWhat } from '../actors/audit-trail.js';
import { parseId } from '../schemas/common.js';
import type { EraseHomeReply } from '../schemas/homes.js';
import { requireAnswerRoom, route, routeOptions, storeWriteOptions, type RouteHost } from '../transport/http.js';
import type { TemplatedApp } from '../transport/uws.js';
import { ExportPace } from './export-pace.js';
import { eraseHome, exportHome, type HomeDataDeps } from './home-data.js';
import { stringifyInSlices, type Meter } from './sliced.js';

export interface HomeApiDeps extends RouteHost {
  auth: Authenticator;
  data: HomeDataDeps;
  audit?: AuditTrail | undefined;
  /** exports built at once on this node; @default 2 */
  maxExports?: number;
  /** how often one home may be exported; @default a tenth of the node's time, homes built in under 50 ms free */
  exportPace?: ExportPace;
}

export function mountHomeApi(app: TemplatedApp, deps: HomeApiDeps): void {
  const { auth, data } = deps;
  const opts = routeOptions(deps);
  // routes that wait for the node's store: refused at once while it stalls (api/store-admission.ts)
  const writeOpts = storeWriteOptions(deps);
  const audit = deps.audit ?? NO_AUDIT;
  const maxExports = deps.maxExports ?? 2;
  let exporting = 0;
  const exportingHomes = new Set<string>();
  const pace = deps.exportPace ?? new ExportPace();

  route(
    app,
    'get',
    '/v1/homes/:homeId/export',
    async (call) => {
      const principal = await auth.fromHeader(call.authorization, call.remote);
      const homeId = parseId(call.params[0], 'homeId');
      // the home only once the caller may see it: a refused attempt is the caller's entry (see rules-routes `change`)
      const what: AuditWhat = { action: 'home.export' };
      return audit.run(byCaller(principal, call), what, async () => {
        requireHome(principal, homeId);
        what.homeId = homeId;
        requireAnswerRoom();
        pace.check(homeId);
        if (exporting >= maxExports) throw new TierError('busy', `${exporting} home exports are being built on this node: try again shortly`);
        // one at a time per home: a home's users cannot hold every slot of the node from the others
        if (exportingHomes.has(homeId)) throw new TierError('busy', `an export of home ${homeId} is being built or read: try again once it is done`);
        exporting++;
        exportingHomes.add(homeId);
        const done = () => {
          exporting--;
          exportingHomes.delete(homeId);
        };
        // the slot is held until the client has taken the answer (or left): a client that asks
        // and does not read holds a copy as surely as one being built
        // what the build took of the loop, not of the clock: a busy node does not make a home's export look long
        const meter: Meter = { ms: 0 };
        const built = exportHome(data, homeId, meter).then(async (body) => ({ body, text: await stringifyInSlices(body, undefined, meter) }));
        const { body, text } = await built.catch((err: unknown) => {
          done();
          throw err;
        });
        pace.built(homeId, meter.ms);
        what.detail = `${body.hubs.length} hubs, ${body.rules.length} rules, ${body.scenes.length} scenes, ${body.events.length} events`;
        return { status: 200, text, contentType: 'application/json', onSent: done };
      });
    },
    // no HEAD: it would build the export, take a slot, count against the home's pace and record
    // `home.export ok` with nothing sent (review "apiconform" F2); the catch-all answers it 405
    { ...opts, head: false },
  );

  route(
    app,
    'del',
    '/v1/admin/homes/:homeId',
    async (call) => {
      const principal = await auth.fromHeader(call.authorization, call.remote);
      const homeId = parseId(call.params[0], 'homeId');
      const what: AuditWhat = { action: 'home.erase' };
      return audit.run(byCaller(principal, call), what, async () => {
        requireAdmin(principal);
        what.homeId = homeId;
        const erased = await eraseHome(data, homeId);
        what.detail = `${erased.hubs.length} hubs, ${erased.rules} rules, ${erased.scenes} scenes${erased.settingsReset ? ', settings reset' : ''}`;
        const reply: Static<typeof EraseHomeReply> = { ok: true, ...erased };
        return { status: 200, body: reply };
      });
    },
    writeOpts,
  );
}
