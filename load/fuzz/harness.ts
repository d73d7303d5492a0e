import { AdminClient, request } from '../wire/admin.js';
import type { InputRecord, Recorder } from './report.js';
import type { Target } from './target.js';

/**
 * What the three surface fuzzers share: the node under test, the recorder, the admin API, the
 * run's deadline, and the crash protocol. When the node dies, `ready()` waits for the restart (or
 * answers false when the run stops); a surface that sees `target.generation` change sets itself up
 * again (a restarted embedded node has forgotten every hub and token).
 */
export class Harness {
  stopped = false;
  /** why the run stopped early, if it did */
  stopReason: string | null = null;
  /** set while a crashed node is being restarted */
  restarting: Promise<void> | null = null;
  /**
   * The inputs each sender sent last, by sender (e.g. `hub/3`, `http`); kept after their answer,
   * so a crash that ends a socket before its sender notices is still attributed to them.
   */
  readonly inFlight = new Map<string, InputRecord[]>();
  phase = 'setup';
  /** hub id → the sender that drives it, so a failure the node logs for a hub names its inputs */
  readonly owners = new Map<string, string>();
  /** the node's admin API with its admin token (a restarted node keeps its URL and token) */
  readonly admin: AdminClient;

  constructor(
    readonly target: Target,
    readonly rec: Recorder,
    /** random per run: hub ids, homes and tokens of one run never collide with another's */
    readonly runId: string,
    /** ms since the epoch after which every loop ends */
    readonly deadline: number,
  ) {
    this.admin = new AdminClient(target.httpUrl, target.adminToken);
  }

  /** True when the run may go on; waits out a restart in progress. */
  async ready(): Promise<boolean> {
    if (this.restarting) await this.restarting;
    return !this.over();
  }

  over(): boolean {
    if (!this.stopped && Date.now() > this.deadline) this.stop('the time budget (--max-seconds) ran out');
    return this.stopped;
  }

  stop(reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopReason = reason;
  }

  /** Records what a sender is about to send (the crash report names it). */
  sending(sender: string, inputs: InputRecord[]): void {
    this.inFlight.set(sender, inputs);
    for (const i of inputs) this.rec.sentInput(i);
  }

  /** Marks the end of an exchange (the inputs stay listed until the sender's next ones). */
  done(_sender: string): void {}

  /** A JSON request to the node's API; never throws (status 0 when there was no answer). */
  async api(method: string, path: string, opts: { token?: string; body?: unknown; timeoutMs?: number } = {}): Promise<{ status: number; text: string; json: unknown }> {
    try {
      const res = await request(this.target.httpUrl, method, path, opts.token ?? null, opts.body, opts.timeoutMs ?? 10_000);
      return { status: res.status, text: res.text, json: typeof res.body === 'string' ? null : res.body };
    } catch (err) {
      return { status: 0, text: (err as Error).message, json: null };
    }
  }


  /** Provisions a hub with the admin token; its secret. Throws when the node refuses. */
  async provision(hubId: string, homeId: string): Promise<string> {
    const done = await this.admin.provisionHub(hubId, homeId);
    if (!('secret' in done)) throw new Error(`provisioning ${hubId} failed: it exists already`);
    return done.secret;
  }

  /** A user JWT for `homes`, minted by the node's admin API. */
  userToken(homes: string[]): Promise<string> {
    return this.admin.appToken(`fuzz-${this.runId}`, homes);
  }
}
