import { ensureServers, MissingServerError } from '../load/harness/index.js';

/**
 * Before any suite: nats-server and redis-server must be there (installed now when this runs as
 * root with apt-get, unless HUBTIER_NO_INSTALL=1), so a missing one stops the run at once with the
 * command that fixes it instead of failing each suite that starts one.
 */
export default function setup(): void {
  try {
    ensureServers();
  } catch (err) {
    if (!(err instanceof MissingServerError)) throw err;
    // the message is the whole story: no stack trace around it
    process.stderr.write(`\n${err.message}\n\n`);
    process.exit(1);
  }
}
