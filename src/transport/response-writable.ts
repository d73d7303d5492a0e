/**
 * A uWS response as a Node Writable, for answers too large to build in memory (a store's backup):
 * a write the socket does not take at once is held by uWS, and the next waits for the socket to
 * drain (onWritable), so the node holds about one chunk per such answer whatever the client reads.
 * Write the status and headers (in a cork) before the first write. A client that goes away fails
 * the write in progress or the next one. A write is done at the next turn, so the chunks written
 * meanwhile (a backup's lines, one each) go out together, in one cork: not a send per line.
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
  const send = (chunks: Buffer[], done: (err?: Error | null) => void) => {
    if (aborted) return done(gone());
    let taken = true;
    res.cork(() => {
      for (const chunk of chunks) taken = res.write(chunk);
    });
    if (taken) setImmediate(done);
    else waiting = done;
  };
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      send([chunk], done);
    },
    writev(chunks, done) {
      send(chunks.map((c) => c.chunk as Buffer), done);
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
