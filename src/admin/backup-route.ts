/**
 * `GET /debug/backup` on the admin port (embedded default): the node's store as `npm run data --
 * export` writes it (JSON lines, the end line's SHA-256), read in one transaction while the node
 * keeps running, streamed as the client reads it. `npm run data -- import` takes it. One at a time.
 */
import type { Writable } from 'node:stream';
import type { Logger } from '../log/logger.js';
import type { AdminPage } from '../ports/ports.js';
import { TierError } from '../errors.js';
import { errorReply, noSniff, send } from '../transport/http.js';
import { responseWritable } from '../transport/response-writable.js';
import { adminOnly } from './admin-only.js';

/** `write(out)`: the store's records to `out`, ended (data-backup.ts `streamBackup`); resolves with the count per sub-database. */
export function backupPage(write: (out: Writable) => Promise<Record<string, number>>): AdminPage {
  let running = false;
  return (admin, context) => {
    const log: Logger = context.log.child({ part: 'backup' });
    admin.get('/debug/backup', (res, req) => {
      if (!adminOnly(res, req, context.adminToken, context.guesses)) return;
      if (running) {
        send(res, { aborted: false }, { ...errorReply(new TierError('busy', 'a backup is being written: one at a time')), status: 409 });
        return;
      }
      running = true;
      const started = performance.now();
      res.cork(() => {
        noSniff(res.writeStatus('200 OK')).writeHeader('content-type', 'application/x-ndjson').writeHeader('content-disposition', 'attachment; filename="hubtier-backup.jsonl"').writeHeader('cache-control', 'no-store');
      });
      const out = responseWritable(res);
      write(out).then(
        (counts) => log.info({ records: Object.values(counts).reduce((a, b) => a + b, 0), ms: Math.round(performance.now() - started) }, 'backup written (GET /debug/backup)'),
        (err: unknown) => {
          // its 'error' event has no listener left (the writer's is gone): unheard, it ended the process
          out.on('error', () => undefined).destroy(err instanceof Error ? err : new Error(String(err)));
          log.warn({ err }, 'backup not written whole (GET /debug/backup): the connection was cut');
        },
      ).finally(() => {
        running = false;
      });
    });
  };
}
