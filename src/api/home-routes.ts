/**
 * HTTP routes of a home's data as a whole (src/api/home-data.ts):
 *
 *   GET    /v1/homes/{homeId}/export    everything kept of the home, in one document (its users, the admin)
 *   DELETE /v1/admin/homes/{homeId}     erase it (admin): the home taken from user tokens, then rules,
 *                                        scenes, settings, hubs, stored events, push notifications
 *
 * Both are recorded in the audit trail (`home.export`, `home.erase`).
 */
import type { Static } from '@sinclair/typebox';
import { requireAdmin, requireHome, type Authenticator } from '../auth/authenticator.js';
import { byCaller, NO_AUDIT, type AuditTrail, type AuditWhat } from '../actors/audit-trail.js';
import { parseId } from '../schemas/common.js';
import type { EraseHomeReply } from '../schemas/homes.js';
import { route, routeOptions, type RouteHost } from '../transport/http.js';
import type { TemplatedApp } from '../transport/uws.js';
import { eraseHome, exportHome, type HomeDataDeps } from './home-data.js';

export interface HomeApiDeps extends RouteHost {
  auth: Authenticator;
  data: HomeDataDeps;
  audit?: AuditTrail | undefined;
}

export function mountHomeApi(app: TemplatedApp, deps: HomeApiDeps): void {
  const { auth, data } = deps;
  const opts = routeOptions(deps);
  const audit = deps.audit ?? NO_AUDIT;

  route(
    app,
    'get',
    '/v1/homes/:homeId/export',
    async (call) => {
      const principal = await auth.fromHeader(call.authorization);
      const homeId = parseId(call.params[0], 'homeId');
      const what: AuditWhat = { action: 'home.export', homeId };
      return audit.run(byCaller(principal, call), what, async () => {
        requireHome(principal, homeId);
        const body = await exportHome(data, homeId);
        what.detail = `${body.hubs.length} hubs, ${body.rules.length} rules, ${body.scenes.length} scenes, ${body.events.length} events`;
        return { status: 200, body };
      });
    },
    opts,
  );

  route(
    app,
    'del',
    '/v1/admin/homes/:homeId',
    async (call) => {
      const principal = await auth.fromHeader(call.authorization);
      const homeId = parseId(call.params[0], 'homeId');
      const what: AuditWhat = { action: 'home.erase', homeId };
      return audit.run(byCaller(principal, call), what, async () => {
        requireAdmin(principal);
        const erased = await eraseHome(data, homeId);
        what.detail = `${erased.hubs.length} hubs, ${erased.rules} rules, ${erased.scenes} scenes${erased.settingsReset ? ', settings reset' : ''}`;
        const reply: Static<typeof EraseHomeReply> = { ok: true, ...erased };
        return { status: 200, body: reply };
      });
    },
    opts,
  );
}
