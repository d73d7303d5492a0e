import { ErrorCodes, isErrorCode } from '../../proto/errors.js';
import type { ChaosCluster } from './cluster.js';
import { deviceId } from './chaos-hub.js';
import { bump, counts } from './ledger.js';
// one connection per request (wire/admin.ts): a failure then belongs to exactly the node process it reached
import { NoAnswerError, request } from '../wire/admin.js';
import type { Random } from './random.js';

/**
 * A steady stream of commands (`POST /v1/hubs/{hub}/devices/{device}/commands`) at a fixed rate,
 * each to a random node that is up and a random hub and device; the hubs answer them. Every
 * request must end in a definitive answer: 200 with the hub's result, or an error of the protocol's
 * table (proto/errors.ts) with the HTTP status the table gives it. Anything else (no answer, a
 * reset connection, an answer outside the table) is counted as undefined, by the process the
 * request's connection went to: one that was killed (expected), one that was stopped with SIGTERM
 * (a drain should still answer), or one that was not signalled at all.
 */

export interface CommandOptions {
  /** requests per second over the whole cluster */
  rate: number;
  /** the command's `timeoutMs`: how long the hub has to answer */
  timeoutMs: number;
}

export interface CommandTally {
  sent: number;
  ok: number;
  /** definitive error answers, by code */
  errors: Record<string, number>;
  /** no definitive answer, by the fate of the process asked, then by what happened */
  undefinedAnswers: { toKilled: Record<string, number>; toStopped: Record<string, number>; other: Record<string, number> };
  /** of the undefined answers, how many per node process */
  undefinedByPid: Map<number, number>;
}

const TICK_MS = 20;
const MAX_INFLIGHT = 256;
/** Beyond the command's own timeout, how long the client waits for any answer. */
const CLIENT_MARGIN_MS = 8_000;

export class CommandStream {
  readonly tally: CommandTally = {
    sent: 0,
    ok: 0,
    errors: counts(),
    undefinedAnswers: { toKilled: counts(), toStopped: counts(), other: counts() },
    undefinedByPid: new Map(),
  };
  private ticker: NodeJS.Timeout | null = null;
  private inflight = new Set<Promise<void>>();
  private budget = 0;
  private last = 0;
  private seq = 0;

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly hubIds: readonly string[],
    private readonly devices: number,
    private readonly rng: Random,
    private readonly opts: CommandOptions,
  ) {}

  start(): void {
    if (this.opts.rate <= 0) return;
    this.last = performance.now();
    this.ticker = setInterval(() => this.tick(), TICK_MS);
  }

  /** Stops sending and waits for the requests in flight (each has its own deadline). */
  async stop(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
    await Promise.allSettled([...this.inflight]);
  }

  private tick(): void {
    const now = performance.now();
    this.budget = Math.min(this.budget + ((now - this.last) / 1000) * this.opts.rate, this.opts.rate);
    this.last = now;
    while (this.budget >= 1 && this.inflight.size < MAX_INFLIGHT) {
      this.budget -= 1;
      const p = this.one()
        .catch(() => bump(this.tally.undefinedAnswers.other, 'chaos_internal'))
        .finally(() => this.inflight.delete(p));
      this.inflight.add(p);
    }
  }

  private async one(): Promise<void> {
    const node = this.rng.pick(this.cluster.up());
    const hubId = this.rng.pick(this.hubIds);
    if (!node || hubId === undefined) return;
    const pid = node.proc.pid;
    const dev = deviceId(this.rng.int(this.devices));
    const level = ++this.seq;
    this.tally.sent++;
    let outcome: string;
    try {
      const res = await request(node.httpUrl, 'POST', `/v1/hubs/${hubId}/devices/${dev}/commands`, this.cluster.adminToken, { set: { level }, timeoutMs: this.opts.timeoutMs }, this.opts.timeoutMs + CLIENT_MARGIN_MS);
      const body = res.body as { ok?: unknown; code?: unknown; result?: { level?: unknown } };
      if (res.status === 200 && body.ok === true && body.result?.level === level) {
        this.tally.ok++;
        return;
      }
      if (res.status !== 200 && isErrorCode(body.code) && ErrorCodes[body.code].http === res.status) {
        bump(this.tally.errors, body.code);
        return;
      }
      outcome = `answer ${res.status} ${typeof body.code === 'string' ? body.code : typeof res.body === 'string' ? 'not JSON' : 'without the result'}`;
    } catch (err) {
      outcome = err instanceof NoAnswerError ? err.code : String(err);
    }
    const signal = this.cluster.signalled.get(pid);
    const { undefinedAnswers: u } = this.tally;
    bump(signal === 'SIGKILL' ? u.toKilled : signal === 'SIGTERM' ? u.toStopped : u.other, outcome);
    this.tally.undefinedByPid.set(pid, (this.tally.undefinedByPid.get(pid) ?? 0) + 1);
  }
}
