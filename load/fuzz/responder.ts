import type { Harness } from './harness.js';
import type { Surface } from './report.js';
import { HubConn } from './hub-conn.js';
import { MpMap, pack } from './msgpack.js';

/** A command as the responder hub received it, decoded by the fuzzer's own reader (keys exactly as sent). */
export interface ReceivedCommand {
  id: number;
  d: unknown;
  m: unknown;
  p: unknown;
}

/** @default 20_000 (ms): the responder sends a heartbeat when it has been quiet this long (idle is 75 s) */
const HEARTBEAT_MS = 20_000;

/**
 * A hub that answers every command at once with `ok` and its parameters as the result, and keeps
 * what it received: the app and HTTP fuzzers command it to check that ids, keys and values travel
 * from the caller to the hub and back unchanged (or are refused). Its shadow stays empty, so the
 * server forwards any valid device id.
 */
export class Responder {
  hubId = '';
  readonly homeId: string;
  private secret = '';
  private generation = 0;
  private conn: HubConn | null = null;
  private lastSent = 0;
  private readonly received: ReceivedCommand[] = [];
  /** the `max` of the responder's welcome: no frame to it may be larger, commands over it are refused */
  max = 16_384;

  constructor(
    private readonly h: Harness,
    /** names the hub (one responder per phase) */
    private readonly role: Extract<Surface, 'app' | 'http'>,
  ) {
    this.homeId = `fz-home-${h.runId}`;
  }

  /** Provisioned (again after a restart) and connected; throws when it cannot be. */
  async ensure(): Promise<void> {
    if (this.generation !== this.h.target.generation) {
      this.generation = this.h.target.generation;
      this.hubId = `fz-${this.h.runId}-${this.role}-responder-${this.generation}`;
      this.h.owners.set(this.hubId, this.role);
      this.secret = await this.h.provision(this.hubId, this.homeId);
      this.conn = null;
    }
    if (this.conn?.open) {
      if (Date.now() - this.lastSent > HEARTBEAT_MS) this.send(pack(new MpMap([['t', 3]])));
      return;
    }
    const opened = await HubConn.open({ url: this.h.target.wsUrl, hubId: this.hubId, secret: this.secret });
    if (opened.kind !== 'open') throw new Error(`responder hub could not connect: ${opened.kind === 'refused' ? `${opened.status} ${opened.body}` : opened.message}`);
    const conn = opened.conn;
    conn.onMessage = (m) => {
      const f = m.frame;
      if (f?.t === 2 && typeof f.max === 'number') this.max = f.max;
      if (m.raw.length > this.max) this.h.rec.violation({ invariant: 'frame-over-max', surface: this.role, klass: 'responder', detail: `the responder hub got a frame of ${m.raw.length} bytes (type ${String(f?.t)}), over its welcome's max of ${this.max}` });
      if (f?.t !== 7) return;
      const cmd: ReceivedCommand = { id: f.id as number, d: f.d, m: f.m, p: f.p };
      this.received.push(cmd);
      if (this.received.length > 16) this.received.shift();
      this.send(pack(new MpMap([['t', 8], ['id', cmd.id], ['ok', true], ['r', cmd.p]])));
    };
    this.conn = conn;
    this.send(pack(new MpMap([['t', 1], ['v', 1], ['b', `responder-${Date.now()}`]])));
    const ok = await conn.until(() => conn.inbox.some((m) => m.frame?.t === 2), 10_000);
    if (!ok) throw new Error(`responder hub: no welcome (${conn.closed ? `closed ${conn.closed.code}` : 'timeout'})`);
  }

  /** Commands received since the last `take()`. */
  take(): ReceivedCommand[] {
    return this.received.splice(0);
  }

  async close(): Promise<void> {
    await this.conn?.close();
    this.conn = null;
  }

  private send(bytes: Uint8Array): void {
    this.lastSent = Date.now();
    this.conn?.send(bytes);
  }
}
