import { createServer } from 'node:net';
import type { TemplatedApp, us_listen_socket } from '../transport/uws.js';

/** uSockets' LIBUS_LISTEN_EXCLUSIVE_PORT: no SO_REUSEPORT, so a second process on the port fails to bind. */
const LISTEN_EXCLUSIVE = 1;
const LISTEN_DEFAULT = 0;

/** Binds `app` to host:port; `shared` lets other processes bind it too (SO_REUSEPORT). */
export function listen(app: TemplatedApp, host: string, port: number, shared: boolean): Promise<{ socket: us_listen_socket }> {
  return new Promise((resolve, reject) => {
    const done = (socket: us_listen_socket | false) => {
      if (socket) resolve({ socket });
      else void whyNot(host, port).then((why) => reject(new Error(`cannot listen on ${host}:${port}: ${why ?? 'the port is in use'}${why === null && !shared ? ' (bound exclusively: set TIER_REUSE_PORT=1 to share it)' : ''}`)));
    };
    // the typings lack the (host, port, options, cb) overload that uWS v20 accepts
    (app.listen as unknown as (h: string, p: number, o: number, cb: typeof done) => void)(host, port, shared ? LISTEN_DEFAULT : LISTEN_EXCLUSIVE, done);
  });
}

/**
 * Why host:port cannot be bound, as the kernel says it to a bind of Node's own (uWS answers only
 * `false`): null for a port in use, or when the bind succeeds after all. Every failure read "the
 * port is in use", an address not of this machine too (review "config").
 */
function whyNot(host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRNOTAVAIL') resolve(`${host} is not an address of this machine (HOST, ADMIN_HOST)`);
      else if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') resolve(`${host} does not resolve (HOST, ADMIN_HOST)`);
      else if (err.code === 'EACCES') resolve(`permission denied (a port below 1024 needs privileges)`);
      else if (err.code === 'EADDRINUSE') resolve(null);
      else resolve(err.code ?? err.message);
    });
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(null)));
  });
}
