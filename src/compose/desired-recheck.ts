/**
 * After the node is back on the bus, each of its hub sessions reads its stored desired state back
 * (changes published while it was off never reached it: review "desired"), paced: told all at
 * once, 19,000 sessions read 19,000 shadows together, past the Redis client's timeout, and at every
 * reconnect of a flapping connection (review diff19).
 */
import { DESIRED_RECHECK } from '../actors/hub-overflow.js';
import type { HubMessage } from '../actors/hub-deps.js';

/** sessions told per step, and the step (ms): 19,000 over about 10 s */
const PER_STEP = 500;
const STEP_MS = 250;

/** Answers `reconnected()`: each call starts a pass over `sessions()` again, an earlier pass under way given up. */
export function desiredRecheck(sessions: () => ReadonlyArray<{ tell(msg: HubMessage): unknown }>, perStep = PER_STEP, stepMs = STEP_MS): { reconnected(): void; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  const stop = () => clearTimeout(timer);
  return {
    reconnected() {
      stop();
      const list = sessions();
      let next = 0;
      const step = () => {
        for (const end = Math.min(list.length, next + perStep); next < end; next++) list[next]!.tell(DESIRED_RECHECK);
        if (next < list.length) timer = setTimeout(step, stepMs).unref();
      };
      step();
    },
    stop,
  };
}
