import { readFileSync } from 'node:fs';
import type { Principal } from '../auth/authenticator.js';

/** Files a node needs besides its sockets (backends, LMDB, rule workers, listen sockets, HTTP requests). */
export const OWN_FILES = 500;
/** App sockets a node allows when its open-file limit leaves no room for them: an operator can still look. */
const MIN_APP_SOCKETS = 64;
/** Where the open-file limit cannot be read (not Linux) or is unlimited. */
const UNREAD_LIMIT_APP_SOCKETS = 10_000;

/**
 * TIER_MAX_APP_SOCKETS when not set: what the open-file limit leaves once the hub sessions
 * (TIER_MAX_HUB_SESSIONS) and the node's own files are counted, so hubs and apps together never run
 * the process out of files (at 20,000 files and 19,000 hubs: 500 app sockets).
 */
export function defaultMaxAppSockets(openFileLimit: number | undefined, maxHubSessions: number): number {
  if (openFileLimit === undefined || !Number.isFinite(openFileLimit)) return UNREAD_LIMIT_APP_SOCKETS;
  return Math.max(MIN_APP_SOCKETS, openFileLimit - maxHubSessions - OWN_FILES);
}

/** The soft "Max open files" of a `/proc/<pid>/limits` text; Infinity for unlimited. */
export function parseOpenFileLimit(limits: string): number {
  const line = limits.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  if (soft === undefined) throw new Error('no "Max open files" line in the limits');
  if (soft === 'unlimited') return Infinity;
  const n = Number(soft);
  if (!Number.isInteger(n)) throw new Error(`unreadable open-file limit "${soft}"`);
  return n;
}

/** This process's soft open-file limit (RLIMIT_NOFILE), or undefined where /proc cannot tell (not Linux). */
export function ownOpenFileLimit(procDir = '/proc/self'): number | undefined {
  try {
    return parseOpenFileLimit(readFileSync(`${procDir}/limits`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Why an app upgrade was refused: the node holds its maximum or is near its memory limit (`busy`), or the user holds its maximum (`limit_exceeded`). */
export type AppRefusal = 'full' | 'memory' | 'user';

/**
 * Admission of app sockets, counted at the upgrade before the socket exists: at most `maxSockets`
 * on the node and `maxPerUser` per user token `sub` (the admin token is held to the node's bound
 * only). Each socket counted by `tryOpen` is given back by `closed` once, whatever closed it. Per
 * node: in cluster mode a user may hold `maxPerUser` on each node.
 */
export class AppSocketLimits {
  private total = 0;
  private readonly bySub = new Map<string, number>();
  /** refusals since start, read by the metrics */
  readonly refusals: Record<AppRefusal, number> = { full: 0, memory: 0, user: 0 };

  constructor(
    readonly maxSockets: number,
    readonly maxPerUser: number,
    /** true while the node refuses hubs for memory (UpgradeLimits' reading): apps are refused too, their sockets and subscriptions are memory as well */
    private readonly nearMemoryLimit: () => boolean = () => false,
  ) {}

  /** Counts a socket of `principal`, or answers why not (then nothing is counted). */
  tryOpen(principal: Principal): AppRefusal | null {
    if (this.total >= this.maxSockets) return this.refuse('full');
    if (this.nearMemoryLimit()) return this.refuse('memory');
    if (principal.kind === 'user') {
      const held = this.bySub.get(principal.sub) ?? 0;
      if (held >= this.maxPerUser) return this.refuse('user');
      this.bySub.set(principal.sub, held + 1);
    }
    this.total++;
    return null;
  }

  /** A socket `tryOpen` counted is gone. */
  closed(principal: Principal): void {
    this.total--;
    if (principal.kind !== 'user') return;
    const held = (this.bySub.get(principal.sub) ?? 1) - 1;
    if (held > 0) this.bySub.set(principal.sub, held);
    else this.bySub.delete(principal.sub);
  }

  /** What the refused app is told. */
  message(reason: AppRefusal): string {
    switch (reason) {
      case 'full':
        return `this node holds its maximum of ${this.maxSockets} app sockets: retry later`;
      case 'memory':
        return 'this node is near its memory limit: retry later';
      case 'user':
        return `this user holds its maximum of ${this.maxPerUser} app sockets on this node: close one first`;
    }
  }

  get sockets(): number {
    return this.total;
  }

  /** users holding sockets (bounded by `sockets`) */
  get users(): number {
    return this.bySub.size;
  }

  private refuse(reason: AppRefusal): AppRefusal {
    this.refusals[reason]++;
    return reason;
  }
}
