import { randomBytes } from 'node:crypto';

/** What a request id may be: it is echoed in a header and written in log lines, so nothing else. */
const VALID = /^[A-Za-z0-9._:-]{1,128}$/;

export function isValidRequestId(id: string): boolean {
  return VALID.test(id);
}

/**
 * Request ids of one process: `<node>-<random>-<counter>`, unique across nodes and restarts, at the
 * cost of a string concatenation (no random bytes per request, unlike randomUUID).
 */
export class RequestIds {
  private readonly prefix: string;
  private n = 0;

  constructor(nodeId: string) {
    // the node id comes from configuration: characters outside the id alphabet become '_'
    const node = nodeId.replace(/[^A-Za-z0-9._:-]/g, '_').slice(0, 64);
    this.prefix = `${node}-${randomBytes(3).toString('hex')}-`;
  }

  next(): string {
    return this.prefix + (++this.n).toString(36);
  }

  /** The caller's `x-request-id` when it is a valid one, a new id otherwise (empty header included). */
  from(header: string): string {
    return header.length > 0 && isValidRequestId(header) ? header : this.next();
  }
}
