import type { TemplatedApp, us_listen_socket } from '../transport/uws.js';

/** uSockets' LIBUS_LISTEN_EXCLUSIVE_PORT: no SO_REUSEPORT, so a second process on the port fails to bind. */
const LISTEN_EXCLUSIVE = 1;
const LISTEN_DEFAULT = 0;

/** Binds `app` to host:port; `shared` lets other processes bind it too (SO_REUSEPORT). */
export function listen(app: TemplatedApp, host: string, port: number, shared: boolean): Promise<{ socket: us_listen_socket }> {
  return new Promise((resolve, reject) => {
    const done = (socket: us_listen_socket | false) => {
      if (socket) resolve({ socket });
      else reject(new Error(`cannot listen on ${host}:${port}: the port is in use${shared ? '' : ' (bound exclusively: set TIER_REUSE_PORT=1 to share it)'}`));
    };
    // the typings lack the (host, port, options, cb) overload that uWS v20 accepts
    (app.listen as unknown as (h: string, p: number, o: number, cb: typeof done) => void)(host, port, shared ? LISTEN_DEFAULT : LISTEN_EXCLUSIVE, done);
  });
}
