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
export function endStreaming(res: HttpResponse, body: Buffer): void {
  const base = res.getWriteOffset();
  const [, done] = res.tryEnd(body, body.length);
  if (done) return;
  // from here uWS may call onAborted (the client left) instead of onWritable: nothing to undo
  res.onAborted(() => {});
  res.onWritable((offset) => {
    const [ok] = res.tryEnd(body.subarray(offset - base), body.length);
    return ok;
  });
}
