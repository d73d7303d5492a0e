import type { HttpResponse } from './uws.js';

/**
 * Ends a response whose status and headers are written with `body`, handing uWS only what the
 * socket takes now and the rest as the socket drains. `res.end(body)` copies whatever the kernel
 * did not take into uWS's own buffer, and uWS answers a pipelined request behind a synchronous
 * one at once: a client sending 600 requests for a 1.7 MB file and reading none made the node
 * buffer a gigabyte. Here a response the socket cannot take at once stays pending, so uWS answers
 * nothing pipelined behind it (it closes that connection, as for the routes that answer after an
 * `await`), and a connection holds at most one body, shared by every response of that file.
 * Call inside `res.cork`, after the status and headers.
 */
export function endStreaming(res: HttpResponse, body: Buffer, onDone?: () => void): void {
  const base = res.getWriteOffset();
  const [, done] = res.tryEnd(body, body.length);
  if (done) return onDone?.();
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    onDone?.();
  };
  // from here uWS may call onAborted (the client left) instead of onWritable
  res.onAborted(end);
  res.onWritable((offset) => {
    const [ok, finished] = res.tryEnd(body.subarray(offset - base), body.length);
    if (finished) end();
    return ok;
  });
}

/**
 * The bytes of large answers a node holds for sockets that have not taken them yet, under a
 * ceiling: a client that asks for a 10 MB export (or a home's rules) and reads nothing holds it
 * until the connection times out, and eight such took a node from 172 MB to 946 MB (2026-12-06).
 */
export class PendingAnswers {
  private held = 0;
  private last = 0;
  private refusals = 0;
  constructor(public max: number) {}

  /** Bytes held now. */
  get bytes(): number {
    return this.held;
  }

  /** Answers refused for room since start: by `take`, or before they were built (`refuse`). */
  get refused(): number {
    return this.refusals;
  }

  refuse(): void {
    this.refusals++;
  }

  /** The size of the last answer asked for, taken or not: what the next one may well need. */
  get lastSize(): number {
    return this.last;
  }

  /**
   * Holds `n` more bytes, or false when they would pass the ceiling. One answer larger than the
   * ceiling is taken while nothing else is held: refused always, it could never be sent.
   */
  take(n: number): boolean {
    this.last = n;
    if (this.held > 0 && this.held + n > this.max) {
      this.refusals++;
      return false;
    }
    this.held += n;
    return true;
  }

  give(n: number): void {
    this.held -= n;
  }
}
