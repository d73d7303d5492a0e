import { randomBytes } from 'node:crypto';
import { subjects } from '../../proto/subjects.js';
import { asTierError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { encodeBus } from '../protocol/codec.js';
import type { Bus } from '../ports/bus/bus.js';
import { bounded, type AuditActor, type AuditEntry, type AuditLog } from '../ports/audit/audit.js';

/** Who acts and from where, as a route or a socket knows it. */
export interface AuditBy {
  actor: AuditActor;
  ip?: string;
  requestId?: string;
}

/** What is acted on; `homeId` may be filled in by the action itself once it is known. */
export type AuditWhat = Pick<AuditEntry, 'action'> & Partial<Pick<AuditEntry, 'homeId' | 'hubId' | 'deviceId' | 'target' | 'detail'>>;

/** The actor of a principal (src/auth/authenticator.ts): the admin token, or the user's `sub`. */
export function actorOf(p: { kind: 'admin' } | { kind: 'user'; sub: string }): AuditActor {
  return p.kind === 'admin' ? { kind: 'admin' } : { kind: 'user', sub: p.sub };
}

/** The outcome a caller saw: `ok` or the error code it was answered with. */
export function outcomeOf(err: unknown): string {
  return asTierError(err).code;
}

/**
 * The node's side of the audit trail: completes an entry (id, time, this node), bounds its
 * strings, hands it to the store and publishes it on `audit.events` for a SIEM. Never throws and
 * never waits: recording cannot fail or slow the action it describes. Without a store it only
 * publishes.
 */
export class AuditTrail {
  private seq = 0;
  /** drawn once: ids of two nodes of one millisecond and sequence number still differ */
  private readonly salt = randomBytes(5).toString('hex');

  constructor(
    private readonly deps: { store?: AuditLog; bus?: Bus; node: string; log?: Logger; now?: () => number },
  ) {}

  record(by: AuditBy, what: AuditWhat, outcome: string): void {
    try {
      const at = (this.deps.now ?? Date.now)();
      const entry: AuditEntry = bounded({
        id: this.nextId(at),
        at,
        actor: by.actor,
        from: by.ip !== undefined ? { ip: by.ip, node: this.deps.node } : { node: this.deps.node },
        ...what,
        outcome,
        ...(by.requestId ? { requestId: by.requestId } : {}),
      });
      this.deps.store?.record(entry);
      this.deps.bus?.publish(subjects.auditEvents, encodeBus(entry));
    } catch (err) {
      this.deps.log?.warn({ err, action: what.action, requestId: by.requestId }, 'audit entry not recorded');
    }
  }

  /**
   * Unique, and growing with the time and then the order of recording on this node: stores list
   * by (at, id), so two actions of one millisecond keep their order.
   */
  private nextId(at: number): string {
    this.seq = (this.seq + 1) % 36 ** 6;
    return `${at.toString(36).padStart(9, '0')}-${this.seq.toString(36).padStart(6, '0')}-${this.salt}`;
  }

  /** Runs the action and records how it ended (`ok` or its error code); its result or error is passed on. */
  async run<T>(by: AuditBy, what: AuditWhat, action: () => Promise<T>): Promise<T> {
    try {
      const result = await action();
      this.record(by, what, 'ok');
      return result;
    } catch (err) {
      this.record(by, what, outcomeOf(err));
      throw err;
    }
  }
}

/** Who calls, from a principal and what the request tells (its peer address, its request id when known). */
export function byCaller(p: { kind: 'admin' } | { kind: 'user'; sub: string }, source: { remote?: string; requestId?: string }): AuditBy {
  const by: AuditBy = { actor: actorOf(p) };
  if (source.remote) by.ip = source.remote;
  if (source.requestId) by.requestId = source.requestId;
  return by;
}

/** A trail that records nothing (a node part wired without one, tests). */
export const NO_AUDIT = new AuditTrail({ node: '' });
