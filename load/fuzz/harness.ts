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

  constructor(
    readonly target: Target,
    readonly rec: Recorder,
    /** random per run: hub ids, homes and tokens of one run never collide with another's */
    readonly runId: string,
    /** ms since the epoch after which every loop ends */
    readonly deadline: number,
  ) {}

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
    const headers: Record<string, string> = {};
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    try {
      const res = await fetch(`${this.target.httpUrl}${path}`, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
      });
      const text = await res.text();
      let json: unknown = null;
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
      return { status: res.status, text, json };
    } catch (err) {
      return { status: 0, text: (err as Error).message, json: null };
    }
  }

  /** Provisions a hub with the admin token; its secret. Throws when the node refuses. */
  async provision(hubId: string, homeId: string): Promise<string> {
    const res = await this.api('POST', '/v1/admin/hubs', { token: this.target.adminToken, body: { hubId, homeId } });
    const secret = (res.json as { secret?: unknown } | null)?.secret;
    if (res.status !== 201 || typeof secret !== 'string') throw new Error(`provisioning ${hubId} failed: ${res.status} ${res.text.slice(0, 200)}`);
    return secret;
  }

  /** A user JWT for `homes`, minted by the node's admin API. */
  async userToken(homes: string[]): Promise<string> {
    const res = await this.api('POST', '/v1/admin/tokens', { token: this.target.adminToken, body: { sub: `fuzz-${this.runId}`, homes, ttlS: 86_400 } });
    const token = (res.json as { token?: unknown } | null)?.token;
    if (res.status !== 201 || typeof token !== 'string') throw new Error(`minting a user token failed: ${res.status} ${res.text.slice(0, 200)}`);
    return token;
  }
}
