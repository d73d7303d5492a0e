import { monotonicMs } from '../actors/clock.js';
import type { Logger } from './logger.js';
import { RequestIds } from './request-id.js';
import { SampledLog, Sampler } from './sampler.js';

/** Writes one route's access line: bound to its method and template when the route is registered. */
export type AccessLine = (status: number, us: number, requestId: string, code: string | undefined) => void;

/**
 * The HTTP access log: one `http request` line per request at info (`method`, `route` the template,
 * never the path with its ids, `status`, `us`, `requestId`, and `code` of an error answer), at most
 * `ratePerSec` per route, class of answer and second, then one `http requests not logged` line per
 * route, class and second with the count. Answers ≥ 500 are always written. The classes (answered
 * under 400; refused 401, 403, 429; any other 4xx) keep apart budgets: an anonymous flood of bad
 * tokens left the admin's own reads of the route without a line (review "logs").
 */
export class AccessLog {
  readonly ids: RequestIds;
  private readonly sampled: SampledLog;

  constructor(
    private readonly log: Logger,
    nodeId: string,
    /** @default 100: lines per route and second; 0 writes server errors only */
    ratePerSec = 100,
    now: () => number = monotonicMs,
  ) {
    this.ids = new RequestIds(nodeId);
    this.sampled = new SampledLog(log, new Sampler(ratePerSec, 1_000), 'http requests not logged', 'request', now);
  }

  route(method: string, route: string): AccessLine {
    const key = `${method} ${route}`;
    const [refused, other] = [`${key} (refused)`, `${key} (4xx)`];
    const log = this.log;
    return (status, us, requestId, code) => {
      // level and rate are checked before the line's object is built
      if (!log.isLevelEnabled('info')) return;
      if (status < 500 && !this.sampled.admit(status < 400 ? key : status === 401 || status === 403 || status === 429 ? refused : other)) return;
      if (code === undefined) log.info({ method, route, status, us, requestId }, 'http request');
      else log.info({ method, route, status, us, requestId, code }, 'http request');
    };
  }

  close(): void {
    this.sampled.close();
  }
}
