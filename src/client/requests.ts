import type { AppRequest } from '../../proto/app.js';
import { ClientError } from './errors.js';

type Sendable = AppRequest;

/** A request's message, built at each write (a command's timeout is what is left of it then); null: too late to write. */
type Build = (id: number) => Sendable | null;

interface Pending {
  readonly build: Build;
  /** written on the current socket; an unsent one waits for the next open */
  sent: boolean;
  readonly ok: (result: unknown) => void;
  readonly fail: (err: ClientError) => void;
  /**
   * What a drop of the socket does to it once sent: `reject` (a command: the app decides whether
   * to send it again), `forget` (a subscription: the client resubscribes on the next open).
   */
  readonly onDrop: 'reject' | 'forget';
  /** written where it could have run: false until written, and again after an `unauthorized` refusal (not run) */
  mayHaveRun: boolean;
  /** sent again at the next open when refused `unauthorized` (once) */
  resendUnauthorized: boolean;
  timer: ReturnType<typeof setTimeout> | null;
}

/**
 * Requests waiting for their answer, by id. Ids grow for the client's whole life, so an answer
 * that arrives after its request was given up (timed out, dropped) matches nothing.
 */
export class Requests {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly write: (msg: Sendable) => boolean) {}

  /**
   * Registers a request and writes it when the socket is open, else at the next open (`queue`) or
   * not at all (null). `build` makes its message at each write.
   * `timeoutMs`: forgotten after this long, sent or not, and `timeout(mayHaveRun)` called (instead
   * of a handler); `mayHaveRun` false: never written, or refused `unauthorized` and not written since.
   * `resendUnauthorized`: an `unauthorized` answer (the socket's token expired: not run) does not
   * settle it the first time; it waits, unsent, for the next open (a fresh token) instead.
   */
  add(
    build: Build,
    handlers: { ok: (result: unknown) => void; fail: (err: ClientError) => void },
    opts: { onDrop: 'reject' | 'forget'; queue: boolean; timeoutMs?: number; timeout?: (mayHaveRun: boolean) => void; resendUnauthorized?: boolean },
  ): number | null {
    const id = this.nextId++;
    const sent = this.writeOf(id, build);
    if (!sent && !opts.queue) return null;
    const p: Pending = { build, sent, ok: handlers.ok, fail: handlers.fail, onDrop: opts.onDrop, mayHaveRun: sent, resendUnauthorized: opts.resendUnauthorized === true, timer: null };
    if (opts.timeoutMs !== undefined && opts.timeout !== undefined) {
      const timeout = opts.timeout;
      p.timer = setTimeout(() => {
        this.pending.delete(id);
        timeout(p.mayHaveRun);
      }, opts.timeoutMs);
    }
    this.pending.set(id, p);
    return id;
  }

  /** Settles the request an answer names; false when none waits (late, or not ours). */
  answer(id: number, outcome: { ok: true; result: unknown } | { ok: false; error: ClientError }): boolean {
    const p = this.pending.get(id);
    if (!p) return false;
    if (!outcome.ok && outcome.error.code === 'unauthorized' && p.resendUnauthorized) {
      p.resendUnauthorized = false;
      p.sent = p.mayHaveRun = false;
      return true;
    }
    this.settle(id, p);
    if (outcome.ok) p.ok(outcome.result);
    else p.fail(outcome.error);
    return true;
  }

  /** Gives up waiting for a request without settling it (its answer, if one comes, matches nothing). */
  forget(id: number): void {
    const p = this.pending.get(id);
    if (p) this.settle(id, p);
  }

  /** Writes the requests queued while no socket was open. */
  flush(): void {
    for (const [id, p] of this.pending) if (!p.sent) p.sent = p.mayHaveRun = this.writeOf(id, p.build);
  }

  private writeOf(id: number, build: Build): boolean {
    const msg = build(id);
    return msg !== null && this.write(msg);
  }

  /** The socket dropped: sent commands fail with `error`, sent subscriptions are forgotten, unsent requests wait. */
  dropped(error: () => ClientError): void {
    for (const [id, p] of this.pending) {
      if (!p.sent) continue;
      this.settle(id, p);
      if (p.onDrop === 'reject') p.fail(error());
    }
  }

  /** Fails every request (the client closed). */
  failAll(error: () => ClientError): void {
    for (const [id, p] of this.pending) {
      this.settle(id, p);
      p.fail(error());
    }
  }

  get size(): number {
    return this.pending.size;
  }

  private settle(id: number, p: Pending): void {
    this.pending.delete(id);
    if (p.timer !== null) clearTimeout(p.timer);
  }
}
