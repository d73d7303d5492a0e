import type { CommandSender, CommandSpec } from '../actors/commands.js';
import { CommandError } from '../errors.js';
import type { Span } from '../trace/tracing.js';

/** First pause before asking again; doubled up to `MAX_PAUSE_MS`. */
const FIRST_PAUSE_MS = 250;
const MAX_PAUSE_MS = 2_000;

/**
 * A CommandSender that also takes `recheck`: awaited before every try after the first, it throws to
 * end the wait with its error (the rule's home boundary: the hub may have been moved meanwhile).
 */
export type WaitingSender = (hubId: string, deviceId: string, spec: CommandSpec, timeoutMs: number, requestId?: string, parent?: Span, recheck?: () => Promise<void>) => Promise<unknown>;

/**
 * Rules' commands to a hub that is not connected: they wait for it, up to `waitMs`, instead of
 * failing at once. No one retries a rule's command, and a hub is away for seconds at a time: its
 * node restarting (the delays resumed and the events replayed at start run before hubs reconnect),
 * a takeover, a network blip. Apps' commands still fail fast with `hub_offline`: they can retry.
 * `close` ends every wait (the command then fails as it would have), so a draining node is not held.
 * A hub moved to another home while its command waits: `recheck` ends the wait before the next try.
 * A `session_closed` is waited out too where the session never sent the command, or where a node's
 * drain moved the hub away before it answered: sent again at least once, as a run the rules' own
 * node's stop cuts is (review "diff22": a rule on another node lost its command in a rollout).
 */
export class HubWait {
  readonly #pauses = new Set<{ timer: NodeJS.Timeout; done: () => void }>();
  #closed = false;

  constructor(
    private readonly send: CommandSender,
    private readonly waitMs: number,
  ) {}

  /** The sender for rules: as `send`, asking again while the hub is offline and the wait lasts. */
  readonly sender: WaitingSender = async (hubId, deviceId, spec, timeoutMs, requestId, parent, recheck) => {
    const until = performance.now() + this.waitMs;
    // a session_closed waited out is what the wait ends with, not a later try's hub_offline: the
    // command may have gone out (mv), and a drain's cut-by-stop goes by session_closed
    let closed: unknown;
    for (let pause = FIRST_PAUSE_MS; ; pause = Math.min(pause * 2, MAX_PAUSE_MS)) {
      try {
        return await this.send(hubId, deviceId, spec, timeoutMs, requestId, parent);
      } catch (err) {
        if (err instanceof CommandError && err.code === 'session_closed') closed = err;
        const left = until - performance.now();
        if (this.#closed || left <= 0 || !awayForNow(err)) throw awayForNow(err) ? (closed ?? err) : err;
        await this.#pause(Math.min(pause, left));
        if (this.#closed) throw closed ?? err;
      }
      // checked when the caller sent, but a hub reconnecting after a move must not run the old home's command
      if (recheck) await recheck();
    }
  };

  /** Ends every wait now and the ones to come: each command fails with what it last got. */
  close(): void {
    this.#closed = true;
    for (const p of this.#pauses) {
      clearTimeout(p.timer);
      p.done();
    }
    this.#pauses.clear();
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const p = {
        timer: setTimeout(() => {
          this.#pauses.delete(p);
          resolve();
        }, ms),
        done: resolve,
      };
      this.#pauses.add(p);
    });
  }
}

/** A failure that says the hub is away for now, not that the command failed on it. */
function awayForNow(err: unknown): boolean {
  if (!(err instanceof CommandError)) return false;
  return err.code === 'hub_offline' || (err.code === 'session_closed' && (err.unsent || err.hubMoving));
}
