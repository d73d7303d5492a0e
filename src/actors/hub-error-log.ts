import type { ErrorFrame } from '../../proto/frames.js';
import { monotonicMs } from './clock.js';
import type { Logger } from '../log/logger.js';
import { SampledLog, Sampler } from '../log/sampler.js';

/** Characters of a hub's own `msg` a log line keeps (the frame allows 1024): @default 160 */
export const HUB_ERROR_MSG_CHARS = 160;

/**
 * The error frames hubs send, at warn: one node-wide log sampled per hub, @default 10 lines per hub
 * and 60 s, then one summary line with the count skipped (`hubId`, `skipped`, `windowMs`). A hub may
 * send 50 frames/s within its rate budget: each logged in full, one hub would write gigabytes a day.
 */
export class HubErrorLog {
  private readonly lines: SampledLog;

  constructor(log: Logger, perHub = 10, windowMs = 60_000, now: () => number = monotonicMs) {
    this.lines = new SampledLog(log, new Sampler(perHub, windowMs), 'hub error frames, not logged', 'hubId', now, 'warn');
  }

  /** `hubMsg`, not `msg`: pino writes its own message under `msg`, and a second key of that name is lost. */
  write(hubId: string, frame: ErrorFrame): void {
    this.lines.write(hubId, { hubId, code: frame.e, hubMsg: clip(frame.msg), ref: frame.ref }, 'hub reported an error');
  }

  close(): void {
    this.lines.close();
  }
}

/** The first HUB_ERROR_MSG_CHARS characters, marked `…` when cut; never half of a surrogate pair. */
export function clip(msg: string | undefined): string | undefined {
  if (msg === undefined || msg.length <= HUB_ERROR_MSG_CHARS) return msg;
  let end = HUB_ERROR_MSG_CHARS;
  const last = msg.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${msg.slice(0, end)}…`;
}
