/**
 * `npm run fleet -- import FILE --out SECRETS [--url URL] [--admin-token TOKEN]`: provisions the hubs
 * of a CSV or JSON-lines file through a running node and writes their secrets once to SECRETS.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { importHubs } from './fleet-import.js';

const USAGE = `usage: npm run fleet -- import FILE --out SECRETS [--url URL] [--admin-token TOKEN]

import  provisions every hub of FILE through the node at URL, 1,000 per request, and
        writes each new hub's secret once to SECRETS ("hubId,secret" lines, mode 0600;
        SECRETS must not exist). FILE is CSV with a header (hubId,homeId[,model]) or
        JSON lines ({"hubId","homeId","model"?,"labels"?}). Each hub is provisioned or
        refused on its own; refusals are printed with their line numbers.
--url          defaults to http://127.0.0.1:$PORT (8080)
--admin-token  defaults to $ADMIN_TOKEN`;

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({ allowPositionals: true, options: { out: { type: 'string' }, url: { type: 'string' }, 'admin-token': { type: 'string' }, help: { type: 'boolean' } } });
  const [command, file] = positionals;
  if (values.help || command !== 'import' || file === undefined || positionals.length !== 2 || values.out === undefined) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const adminToken = values['admin-token'] ?? process.env.ADMIN_TOKEN;
  if (!adminToken) {
    process.stderr.write(`--admin-token or ADMIN_TOKEN is required\n${USAGE}\n`);
    return 2;
  }
  if (existsSync(values.out)) {
    process.stderr.write(`${resolve(values.out)} exists: secrets are written once, to a new file\n`);
    return 2;
  }
  const url = values.url ?? `http://127.0.0.1:${process.env.PORT ?? '8080'}`;
  const report = await importHubs(file, { url, adminToken, out: values.out });
  for (const f of report.failed) process.stderr.write(`line ${f.line}${f.hubId ? ` (${f.hubId})` : ''}: ${f.code}: ${f.message}\n`);
  process.stdout.write(`provisioned ${report.created} hubs, ${report.failed.length} refused; secrets in ${resolve(values.out)} (mode 0600): move them to the factory's flashing station and delete the file\n`);
  return report.failed.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`fleet error: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
