/**
 * What running a fleet adds to a node, wired in one place so src/compose/server.ts changes by a few
 * lines: the key that seals hub secrets, the fleet's routes, the gate that refuses commands to
 * disabled hubs, the subscription that keeps this node's cached hub records fresh, and token
 * revocation (the node's revocation list, loaded from the store at start and fed by the bus; the
 * app sockets open with a revoked token closed at once). In a cluster (a bus that can lose its
 * server) also the healing after an outage: notices held and sent again, and a reconcile of this
 * node's cache, revocations and hub sessions when its bus comes back (src/api/fleet-reconcile.ts).
 */
import { RevocationPages } from '../api/revocation-list.js';
import { TierError } from '../errors.js';
import { subjects, type CloseOrder, type TokenRevocation } from '../../proto/subjects.js';
import { FleetReconciler, type HeldHub } from '../api/fleet-reconcile.js';
import { NoticeOutbox } from '../api/notice-outbox.js';
import type { FleetSyncMetrics } from '../admin/fleet-sync-metrics.js';
import type { SessionView } from '../actors/session-index.js';
import { sendCommand, type CommandMetrics, type CommandSender, type CommandSpec } from '../actors/commands.js';
import { CLOCK_SKEW_S, type Authenticator } from '../auth/authenticator.js';
import { RevocationList } from '../auth/revocations.js';
import type { SecretBox } from '../auth/secret-box.js';
import { commandsToEnabledHubs, Fleet, watchHubChanges, type FleetDeps } from '../api/fleet.js';
import { mountFleetApi, type RevokeOrder } from '../api/fleet-routes.js';
import { mountHomeApi } from '../api/home-routes.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import { decodeValue, encodeBus, isPlainObject } from '../protocol/codec.js';
import type { Ports } from '../ports/ports.js';
import type { Bus } from '../ports/bus/bus.js';
import type { AuditTrail } from '../actors/audit-trail.js';
import { MAX_TTL_S } from '../schemas/hubs.js';
import { OpenAppSockets } from '../transport/app-sockets.js';
import type { HttpMetrics, RouteTable } from '../transport/http.js';
import type { TemplatedApp } from '../transport/uws.js';
import type { AccessLog } from '../log/access-log.js';
import type { WriteBatch } from '../transport/write-batch.js';
import { secretBoxFor } from './secret-key.js';
import type { Span } from '../trace/tracing.js';

export interface FleetParts {
  box: SecretBox;
  fleet: Fleet;
  /** revoked user tokens: the authenticator refuses them */
  revoked: RevocationList;
  /** open app sockets by token: the app gateway keeps it */
  sockets: OpenAppSockets;
  /** a command to a hub, refused with `hub_disabled` when the operator disabled it */
  commandTo: CommandSender;
  /**
   * The fleet's routes and a home's data as a whole (export, erasure); before mountApi (its
   * catch-all must stay last). `eventsSettled`: the node's published events are in the history.
   */
  mount(app: TemplatedApp, context: { auth: Authenticator; writes: WriteBatch; table: RouteTable; httpMetrics?: HttpMetrics; access?: AccessLog; audit?: AuditTrail; admitWrite?: (() => TierError | null) | undefined; eventsSettled: () => Promise<void> }): void;
  close(): void;
}

/** The hub sessions this node holds, for the re-checks after an outage; `close` tells one to close as the operator's order would. */
export interface HeldSessions<S extends HeldHub> {
  sessions: Pick<SessionView<S>, 'get' | 'list'>;
  close(session: S, e: CloseOrder['e']): void;
  metrics?: FleetSyncMetrics | undefined;
}

/**
 * Resolves once the revocations already stored are known: a node refuses them from its first
 * request. `commandBus`: what commands go over (the node's bus with its local fallback,
 * src/actors/local-commands.ts); `publishEvent`: the node's hub events (a hub leaving a home says so).
 */
export async function fleetParts<S extends HeldHub>(config: Config, ports: Ports, log: Logger, metrics?: CommandMetrics, commandBus: Bus = ports.bus, publishEvent?: FleetDeps['publishEvent'], held?: HeldSessions<S>): Promise<FleetParts> {
  const box = secretBoxFor(config, log);
  const fleetLog = log.child({ part: 'fleet' });
  const revoked = new RevocationList();
  const sockets = new OpenAppSockets();
  // a notice lost within three pings before the outage was seen is sent again too (bus-nats.ts: two missed pongs)
  const outbox = ports.link ? new NoticeOutbox(ports.bus, ports.link, { recentMs: Math.max(30_000, 6 * config.natsPingMs) }) : null;
  const notices = outbox ?? ports.bus;
  const reconciler = ports.link
    ? new FleetReconciler<S>({
        registry: ports.registry,
        revocationStore: ports.revocations,
        revoked,
        sockets,
        sessions: held?.sessions ?? { get: () => undefined, list: () => [] },
        close: (s, e) => held?.close(s, e),
        log: fleetLog,
        metrics: held?.metrics,
      })
    : null;
  const fleet = new Fleet({ registry: ports.registry, bus: ports.bus, notices, directory: ports.directory, shadows: ports.shadows, rules: ports.rules, publishEvent, box, log: fleetLog });
  const stopWatching = watchHubChanges(ports.bus, ports.registry, fleetLog, reconciler ? (hubId) => void reconciler.hub(hubId) : undefined);
  const reconcileHeard = reconciler ? ports.bus.subscribe(subjects.fleetReconcile, () => void reconciler.all('notice')) : null;
  const reconnects = ports.link?.onReconnect((downSince) => {
    const again = outbox!.reconnected(downSince);
    held?.metrics?.redelivered(again);
    if (again.resent > 0 || again.reconcile) fleetLog.info(again, 'fleet notices sent again after the bus reconnected');
    void reconciler!.all('reconnect');
  });
  const heard = ports.bus.subscribe(subjects.tokensRevoked, (msg) => {
    const r = revocationOf(decodeValue(msg.data));
    if (!r) return fleetLog.warn('malformed token revocation ignored');
    revoked.add(r);
    const { closed, narrowed } = sockets.revoke(r);
    if (closed + narrowed > 0) fleetLog.info({ closed, narrowed }, 'app sockets of revoked tokens closed, or narrowed to the homes they keep');
  });
  for (const r of (await ports.revocations?.list(nowS())) ?? []) revoked.add(r);

  /** Stored first (for nodes that start later), then announced to every node, this one included. */
  async function revoke(r: RevokeOrder): Promise<TokenRevocation> {
    // kept as long as the token may live: 30 days from an `iat` up to the skew ahead (with a
    // TIER_AUTH_SKEW_S above 300 the token outlived its revocation by the difference: review "tokens")
    const revocation: TokenRevocation = 'jti' in r ? { jti: r.jti, exp: nowS() + MAX_TTL_S + Math.max(CLOCK_SKEW_S, config.authSkewS) } : { ...r, exp: r.before + MAX_TTL_S };
    if (!revoked.room(revocation)) {
      throw new TierError('limit_exceeded', `the revocation list holds ${revoked.maxEntries} live revocations, its most: revoke by sub or home (one entry for all of a user's or home's tokens), or rotate JWT_SECRET to end every token`);
    }
    await ports.revocations?.add(revocation);
    revoked.add(revocation);
    revocationPages.added(revocation);
    notices.publish(subjects.tokensRevoked, encodeBus(revocation));
    return revocation;
  }
  // the revocation list route's pages: one read kept a while, told of every revocation made here (an erasure's too)
  const revocationPages = new RevocationPages(async () => (await ports.revocations?.list(nowS())) ?? []);

  return {
    box,
    fleet,
    revoked,
    sockets,
    commandTo: commandsToEnabledHubs(ports.registry, (hubId: string, deviceId: string, spec: CommandSpec, timeoutMs: number, requestId?: string, parent?: Span) => sendCommand(commandBus, hubId, deviceId, spec, timeoutMs, metrics, requestId, parent)),
    mount(app, { auth, writes, table, httpMetrics, access, audit, admitWrite, eventsSettled }) {
      const revocations = async () => (await ports.revocations?.list(nowS())) ?? [];
      mountFleetApi(app, { auth, fleet, revoke, revocations, revocationPages, log: fleetLog, maxBodyBytes: config.maxBodyBytes, secretGraceS: config.secretGraceS, writes, table, httpMetrics, access, admitWrite, ...(audit ? { audit } : {}) });
      const revokeHome = async (home: string) => (await revoke({ home, before: Math.floor((await auth.revocationNow()) / 1000) })).before!;
      const data = { fleet, rules: ports.rules, shadows: ports.shadows, history: ports.history, push: ports.push, eventsSettled, revokeHome };
      mountHomeApi(app, { auth, data, log: fleetLog, maxBodyBytes: config.maxBodyBytes, writes, table, httpMetrics, access, audit, admitWrite });
    },
    close() {
      stopWatching();
      revocationPages.close();
      heard.unsubscribe();
      reconcileHeard?.unsubscribe();
      reconnects?.unsubscribe();
      reconciler?.stop();
    },
  };
}

function nowS(): number {
  return Math.floor(Date.now() / 1000);
}

function revocationOf(m: unknown): TokenRevocation | null {
  if (!isPlainObject(m) || typeof m.exp !== 'number') return null;
  if (typeof m.jti === 'string') return { jti: m.jti, exp: m.exp };
  if (typeof m.sub === 'string' && typeof m.before === 'number') return { sub: m.sub, before: m.before, exp: m.exp };
  if (typeof m.home === 'string' && typeof m.before === 'number') return { home: m.home, before: m.before, exp: m.exp };
  return null;
}
