/**
 * What a node does when it may have missed fleet notices (its bus reconnected, or another node
 * announced `fleet.reconcile`): drop every cached hub record, re-read the stored revocations and
 * close the app sockets they cover (or narrow them to the homes their tokens keep), and re-check every hub session it holds against the registry,
 * closing those whose hub was deleted or disabled (bye `hub_disabled`, 4006) or moved to another
 * home (reconnect `hub_moved`, 4008), as the missed `hub.<id>.close` would have. A changed hub's
 * notice re-checks that one session the same way, so notices sent again are safe to repeat.
 */
import type { CloseOrder } from '../../proto/subjects.js';
import type { Logger } from '../log/logger.js';
import { placementVerdict, type HubPlacement, type HubRegistry } from '../ports/hub-registry/hub-registry.js';
import type { RevocationStore } from '../ports/revocations/revocations.js';
import type { RevocationList } from '../auth/revocations.js';

/** A held hub session as a re-check sees it: the home it serves. */
export interface HeldHub {
  readonly hubId: string;
  readonly homeId: string;
  /** `provisionMark` of the admitted record's `createdAt`; 0 when unknown */
  readonly provisioned: number;
}

/** Why a held session was closed by a re-check. */
export type ReconcileClose = 'deleted' | 'disabled' | 'moved';

export interface ReconcileMetrics {
  /** a full reconcile finished (`trigger`: reconnect, notice) */
  reconciled(trigger: ReconcileTrigger): void;
  /** sessions closed by re-checks, or app sockets closed by re-read revocations */
  closed(what: ReconcileClose | 'app_socket', n: number): void;
  /** a re-check could not read the store; retried after `retryMs` */
  failed(): void;
}

export type ReconcileTrigger = 'reconnect' | 'notice';

export interface ReconcileDeps<S extends HeldHub> {
  registry: Pick<HubRegistry, 'forgetAll' | 'placements'>;
  /** stored revocations; absent, only the bus carries them */
  revocationStore?: Pick<RevocationStore, 'list'> | undefined;
  /** the node's list and its open app sockets */
  revoked: Pick<RevocationList, 'add' | 'isRevoked' | 'revokedHomes'>;
  /** closes the sockets of refused tokens, narrows those of tokens that lost some homes (OpenAppSockets) */
  sockets: { enforce(list: ReconcileDeps<S>['revoked']): { closed: number; narrowed: number } };
  /** the sessions this node holds, by hub */
  sessions: { get(hubId: string): S | undefined; list(): S[] };
  /** tells `session` to close as the operator's order `e` would */
  close(session: S, e: CloseOrder['e']): void;
  log: Logger;
  metrics?: ReconcileMetrics | undefined;
  /** @default 500: hubs per registry read (one round trip each) */
  batch?: number;
  /** @default 5_000 (ms): wait before retrying after the store failed */
  retryMs?: number;
  nowS?: () => number;
}

/** What a placement says about a session; null: it may stay. The same id provisioned again counts as deleted. */
export function verdictOf(session: HeldHub, placement: HubPlacement | null): ReconcileClose | null {
  return placementVerdict(session, placement);
}

/**
 * One worker per node: re-checks run one after another, a full reconcile asked while one runs is
 * run once more after it (not once per ask), and single hubs asked meanwhile are read in batches.
 */
export class FleetReconciler<S extends HeldHub> {
  private full: ReconcileTrigger | null = null;
  private readonly hubs = new Set<string>();
  private running: Promise<void> | null = null;
  private retry: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly batch: number;

  constructor(private readonly deps: ReconcileDeps<S>) {
    this.batch = deps.batch ?? 500;
  }

  /** Everything again: cache, revocations, every held session. Resolves when this ask was served. */
  all(trigger: ReconcileTrigger): Promise<void> {
    this.full ??= trigger;
    return this.kick();
  }

  /** The session of `hubId`, if this node holds it, re-checked (its record changed elsewhere). */
  hub(hubId: string): Promise<void> {
    if (!this.deps.sessions.get(hubId)) return Promise.resolve();
    this.hubs.add(hubId);
    return this.kick();
  }

  /** True while work is queued or running (for tests and the drain). */
  get busy(): boolean {
    return this.running !== null;
  }

  stop(): void {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
  }

  private kick(): Promise<void> {
    this.running ??= this.work().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async work(): Promise<void> {
    while (!this.closed && (this.full !== null || this.hubs.size > 0)) {
      try {
        if (this.full !== null) {
          const trigger = this.full;
          this.full = null;
          this.hubs.clear();
          await this.everything(trigger).catch((err: unknown) => {
            this.full ??= trigger;
            throw err;
          });
        } else {
          const ids = [...this.hubs].slice(0, this.batch);
          for (const id of ids) this.hubs.delete(id);
          await this.recheck(ids.map((id) => this.deps.sessions.get(id)).filter((s): s is S => s !== undefined)).catch((err: unknown) => {
            for (const id of ids) this.hubs.add(id);
            throw err;
          });
        }
      } catch (err) {
        this.deps.metrics?.failed();
        this.deps.log.warn({ err, retryMs: this.deps.retryMs ?? 5_000 }, 'fleet reconcile could not read the store; retrying');
        this.retryLater();
        return;
      }
    }
  }

  private retryLater(): void {
    if (this.retry || this.closed) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.kick();
    }, this.deps.retryMs ?? 5_000);
    this.retry.unref();
  }

  private async everything(trigger: ReconcileTrigger): Promise<void> {
    const started = performance.now();
    this.deps.registry.forgetAll();
    let sockets = 0;
    if (this.deps.revocationStore) {
      for (const r of await this.deps.revocationStore.list(this.nowS())) this.deps.revoked.add(r);
      const reached = this.deps.sockets.enforce(this.deps.revoked);
      sockets = reached.closed + reached.narrowed;
      if (reached.closed > 0) this.deps.metrics?.closed('app_socket', reached.closed);
    }
    const held = this.deps.sessions.list();
    const closed = { deleted: 0, disabled: 0, moved: 0 };
    for (let i = 0; i < held.length; i += this.batch) {
      const counts = await this.recheck(held.slice(i, i + this.batch));
      closed.deleted += counts.deleted;
      closed.disabled += counts.disabled;
      closed.moved += counts.moved;
    }
    this.deps.metrics?.reconciled(trigger);
    this.deps.log.info({ trigger, sessions: held.length, closed, appSockets: sockets, ms: Math.round(performance.now() - started) }, 'fleet reconciled');
  }

  /** One registry read for `sessions`; those whose hub no longer belongs to their home are told to close. */
  private async recheck(sessions: S[]): Promise<Record<ReconcileClose, number>> {
    const counts = { deleted: 0, disabled: 0, moved: 0 };
    if (sessions.length === 0) return counts;
    const placements = await this.deps.registry.placements(sessions.map((s) => s.hubId));
    sessions.forEach((s, i) => {
      const verdict = verdictOf(s, placements[i] ?? null);
      // the session may have closed while the store answered: a newer one of the hub is not this one's to judge
      if (verdict === null || this.deps.sessions.get(s.hubId) !== s) return;
      counts[verdict]++;
      this.deps.log.info({ hubId: s.hubId, homeId: s.homeId, verdict }, 'held session no longer matches the registry: closed');
      this.deps.close(s, verdict === 'moved' ? 'hub_moved' : 'hub_disabled');
    });
    for (const what of ['deleted', 'disabled', 'moved'] as const) if (counts[what] > 0) this.deps.metrics?.closed(what, counts[what]);
    return counts;
  }

  private nowS(): number {
    return (this.deps.nowS ?? (() => Math.floor(Date.now() / 1000)))();
  }
}
