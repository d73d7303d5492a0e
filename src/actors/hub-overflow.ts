import { FrameType, type HubToServerFrame } from '../../proto/frames.js';
import type { HubMessage } from './hub-deps.js';
import { absorbReport } from './hub-reports.js';

/**
 * A hub session's mailbox when full: it loses nothing the session owes. A report coalesces into a
 * report queued just before it. Queued beyond the bound, as they are few: the session's own
 * control messages (one close, a timer per pending command and one more, one superseded notice,
 * the operator's close orders, and the gateway's refusals, which close the socket at the 10th: a
 * refusal dropped here left its sequence number unconsumed, and the hub, told the frame was
 * refused for good, stalled on `sequence_gap`); the hub's answer to a command the session waits
 * for (a result, or an error frame naming it), once per command (at most the commands in flight; dropped, its caller heard
 * `command_timeout` for a command the hub ran); a heartbeat, which PROTOCOL.md §4 answers after the
 * acks of the frames before it (refused, a hub using it as a barrier heard `busy`): folded into a
 * heartbeat at the queue's tail (one answer each), else queued, so at most one more than the other
 * messages past the bound; and for desired changes one mark, `DESIRED_PENDING`,
 * queued once however many come: they are stored already, and the mark has the session read them
 * back (dropped, a change waited for the hub's next welcome, days on a long-lived connection).
 * The session refuses the rest: other frames `busy` (the hub resends them), commands `busy`.
 */

/** The mark of desired changes a full mailbox could not queue: one message shared by every session. */
export const DESIRED_PENDING: HubMessage = Object.freeze({ type: 'desiredPending' });
/** The node is back on the bus: desired changes published while it was off are read back (one message shared by every session). */
export const DESIRED_RECHECK: HubMessage = Object.freeze({ type: 'desiredRecheck' });

/** Keeps `msg` as above (queued, absorbed or marked): false when the session must refuse it. */
export function keepPastBound(msg: HubMessage, queued: HubMessage[], commands: { awaits(commandId: number): boolean }): boolean {
  switch (msg.type) {
    case 'closed':
    case 'timer':
    case 'superseded':
    case 'closeOrder':
    case 'refused':
      queued.push(msg);
      return true;
    case 'desired':
    case 'desiredPending':
      if (!queued.includes(DESIRED_PENDING)) queued.push(DESIRED_PENDING);
      return true;
    case 'desiredRecheck':
      if (!queued.includes(DESIRED_PENDING) && !queued.includes(DESIRED_RECHECK)) queued.push(DESIRED_RECHECK);
      return true;
    case 'frame': {
      const tail = queued[queued.length - 1];
      if (tail?.type === 'frame' && absorbReport(tail, msg.frame)) return true;
      if (msg.frame.t === FrameType.heartbeat) {
        // folded only into the tail: nothing queued after that heartbeat whose acks its answers would pass
        if (tail?.type === 'frame' && tail.frame.t === FrameType.heartbeat) tail.beats = (tail.beats ?? 1) + 1;
        else queued.push(msg);
        return true;
      }
      if (!owedResult(msg.frame, queued, commands)) return false;
      queued.push(msg);
      return true;
    }
    default:
      return false;
  }
}

/** The command a frame answers: a result's id, or an error frame's `ref` (it refuses the command, §5). */
function answered(frame: HubToServerFrame): number | undefined {
  return frame.t === FrameType.result ? frame.id : frame.t === FrameType.error ? frame.ref : undefined;
}

/** Whether `frame` answers a command the session waits for, and no answer to it is queued yet. */
function owedResult(frame: HubToServerFrame, queued: HubMessage[], commands: { awaits(commandId: number): boolean }): boolean {
  const id = answered(frame);
  if (id === undefined || !commands.awaits(id)) return false;
  return !queued.some((m) => m.type === 'frame' && answered(m.frame) === id);
}
