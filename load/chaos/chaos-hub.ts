import type { HubClient } from '../wire/hub-client.js';

/**
 * One hub of a chaos run: its HubClient and what the run knows of it: per device the counter
 * values sent and acknowledged, the frames sent and not yet acknowledged, and the session that
 * ended and whose loss check is still due.
 */

export const deviceId = (dev: number) => `dev-${dev}`;

/** A hub's device as a key of one map (the apps' checks). */
export const deviceKey = (hub: string, device: string) => `${hub}\u0000${device}`;

export type Phase = 'idle' | 'connecting' | 'welcomed' | 'running' | 'offline';

/** A session that ended and whose loss check is still due. */
export interface Ended {
  /** the node process the session was on */
  pid: number;
  /** this run closed the socket itself (a blip), not the node */
  blip: boolean;
  /** the last sequence number the hub saw acknowledged when it closed */
  ackedSeq: number;
  at: number;
  cursorCounted: boolean;
}

interface Sent {
  seq: number;
  /** device index; -1 for the devices frame */
  dev: number;
  n: number;
  /** performance.now() when it was sent */
  at: number;
}

export class ChaosHub {
  phase: Phase = 'idle';
  /** node index and process of the current (or last) connection */
  node = -1;
  pid = 0;
  /** increases at every welcome */
  session = 0;
  readonly sent: number[];
  readonly acked: number[];
  /** per device: losses up to this counter value are already counted */
  readonly accounted: number[];
  readonly pending: Sent[] = [];
  nextDev = 0;
  nextReportAt = 0;
  /** `after` of a reconnect frame in the current session */
  hint: number | null = null;
  attempts = 0;
  ended: Ended | null = null;
  /** the run is closing this hub's socket on purpose (a blip) */
  blipping = false;
  announced = false;

  constructor(
    readonly index: number,
    readonly client: HubClient,
    devices: number,
  ) {
    this.sent = new Array<number>(devices).fill(0);
    this.acked = new Array<number>(devices).fill(0);
    this.accounted = new Array<number>(devices).fill(0);
  }

  get id(): string {
    return this.client.hubId;
  }

  /** Every sequenced frame up to `s` is acknowledged; returns when the newest of them was sent (0: none). */
  advance(s: number): number {
    let at = 0;
    while (this.pending.length > 0 && this.pending[0]!.seq <= s) {
      const p = this.pending.shift()!;
      if (p.dev >= 0 && p.n > this.acked[p.dev]!) this.acked[p.dev] = p.n;
      at = p.at;
    }
    return at;
  }
}

/** The phase as it is now: event listeners change it across an await, which narrowing cannot see. */
export function phaseOf(hub: ChaosHub): Phase {
  return hub.phase;
}

/** Losses found by a check are counted once: later checks start above them. */
export function commit(hub: ChaosHub, missing: number[]): void {
  missing.forEach((m, dev) => {
    if (m > 0) hub.accounted[dev] = hub.acked[dev]!;
  });
}
