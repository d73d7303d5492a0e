import { sharedSampledLog } from '../log/sampler.js';
import type { ReportHost } from './hub-reports.js';

/**
 * How far below the last accepted sequence number a resend may go: a hub resends only frames it has
 * not seen acknowledged, and at its rate budget 65,536 frames are more than 20 minutes of them.
 */
export const RESEND_WINDOW = 65_536;

/**
 * A number further back is no resend but a counter that wrapped (a 32-bit one past 2^32 − 1). Acked
 * again as a duplicate, every later frame was dropped unstored and unsaid until the hub rebooted
 * (review "wrap"): refused for good instead (`invalid_field` on `s`), said to the hub and the log.
 */
export function refuseWentBack(host: ReportHost, seq: number, last: number): false {
  host.sendError('invalid_field', `s ${seq} is ${last - seq} below the last accepted (${last}): no resend goes back so far; s never wraps: start a new boot id`, seq, 's');
  sharedSampledLog(host.deps.system.log, 'hub sequence refusals not logged', 'kind').info('went back', { hubId: host.hubId, s: seq, last }, 'hub sequence number went back past any resend (a counter that wrapped?): refused');
  return false;
}
