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

/**
 * Answers `reconnected()`: a pass over `sessions()`; one more after it when the bus came back again
 * meanwhile (starting again from the first at each reconnect, a flapping bus had the first sessions
 * told at every flap and most never: review diff20).
 */
export function desiredRecheck(sessions: () => ReadonlyArray<{ tell(msg: HubMessage): unknown }>, perStep = PER_STEP, stepMs = STEP_MS): { reconnected(): void; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let passing = false;
  let again = false;
  const pass = () => {
    passing = true;
    const list = sessions();
    let next = 0;
    const step = () => {
      for (const end = Math.min(list.length, next + perStep); next < end; next++) list[next]!.tell(DESIRED_RECHECK);
      if (next < list.length) timer = setTimeout(step, stepMs).unref();
      else if (again) {
        again = false;
        timer = setTimeout(pass, stepMs).unref();
      } else passing = false;
    };
    step();
  };
  return {
    reconnected() {
      if (passing) again = true;
      else pass();
    },
    stop() {
      clearTimeout(timer);
      passing = false;
      again = false;
    },
  };
}
