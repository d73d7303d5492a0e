import { createServer } from 'node:net';

/**
 * A TCP port of 127.0.0.1 that was free a moment ago (bound to port 0, then closed): another
 * process may take it before the caller binds, so callers that can retry on a taken port do.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no free port'))));
    });
  });
}
