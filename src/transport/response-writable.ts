/**
 * A uWS response as a Node Writable, for answers too large to build in memory (a store's backup):
 * a write the socket does not take at once is held by uWS, and the next waits for the socket to
 * drain (onWritable), so the node holds about one chunk per such answer whatever the client reads.
 * Write the status and headers (in a cork) before the first write. A client that goes away fails
 * the write in progress or the next one.
 */
import { Writable } from 'node:stream';
import type { HttpResponse } from './uws.js';

export function responseWritable(res: HttpResponse): Writable {
  let aborted = false;
  let waiting: ((err?: Error | null) => void) | null = null;
  const gone = () => new Error('the client closed the connection');
  res.onAborted(() => {
    aborted = true;
    const resume = waiting;
    waiting = null;
    resume?.(gone());
  });
  res.onWritable(() => {
    const resume = waiting;
    waiting = null;
    resume?.();
    return true;
  });
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (aborted) return done(gone());
      let taken = false;
      res.cork(() => {
        taken = res.write(chunk);
      });
      if (taken) done();
      else waiting = done;
    },
    final(done) {
      if (aborted) return done(gone());
      res.cork(() => res.end());
      done();
    },
    destroy(err, done) {
      // failed before the end: the connection is cut, so the client cannot take a part for the whole
      if (!aborted && err) res.close();
      aborted = true;
      done(err);
    },
  });
}
