/**
 * `npm run doctor -- [--url http://host:adminPort] [--token T]`: asks a node's admin port for its
 * self-diagnosis (`GET /debug/diagnose`) and prints it as a checklist (✓ ok, ! look at it,
 * ✗ failing, with what to do). Exit code 0 when nothing fails, 1 when a check fails or the node
 * cannot be asked, 2 for a usage error.
 */
import { parseArgs } from 'node:util';
import { formatChecklist, isDiagnoseReport, printable } from './admin/diagnose.js';
import { toolSettings } from './config/config.js';

const USAGE = `usage: npm run doctor -- [--url http://HOST:ADMIN_PORT] [--token ADMIN_TOKEN]

--url    the node's admin port; defaults to http://127.0.0.1:$ADMIN_PORT (9090)
--token  the admin token; defaults to $ADMIN_TOKEN
(ADMIN_PORT and ADMIN_TOKEN as the node reads them: the environment, else $CONFIG_FILE's)`;

/** @default 15_000 (ms): each check is bounded on the node (2 s); this covers a node that does not answer at all */
const REQUEST_TIMEOUT_MS = 15_000;

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { url: { type: 'string' }, token: { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  // as the node reads them (the environment over CONFIG_FILE), and only those no flag gives
  const token = values.token ?? toolSettings(['adminToken']).adminToken;
  if (!token) {
    process.stderr.write(`--token or ADMIN_TOKEN is required\n${USAGE}\n`);
    return 2;
  }
  const base = (values.url ?? `http://127.0.0.1:${toolSettings(['adminPort']).adminPort}`).replace(/\/+$/, '');
  let res: Response;
  try {
    res = await fetch(`${base}/debug/diagnose`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (err) {
    process.stderr.write(`✗ cannot reach ${base}: ${(err as Error).message}\n    → is the node running, and is this its admin port (ADMIN_PORT, ADMIN_HOST)?\n`);
    return 1;
  }
  if (res.status === 401) {
    process.stderr.write(`✗ ${base} refused the token (401)\n    → pass the node's ADMIN_TOKEN with --token\n`);
    return 1;
  }
  const starting = res.status === 503 ? startingNode(await res.clone().json().catch(() => null)) : null;
  if (starting !== null) {
    process.stderr.write(starting);
    return 1;
  }
  if (!res.ok) {
    // the public port has no /debug routes: 404 there (a newcomer's walk, 2026-12-06)
    const hint = res.status === 404 ? '\n    → is this the node\'s admin port (ADMIN_PORT, default 9090), not its public PORT?' : '';
    process.stderr.write(`✗ ${base}/debug/diagnose answered ${res.status}: ${(await res.text()).slice(0, 200)}${hint}\n`);
    return 1;
  }
  const report: unknown = await res.json().catch(() => null);
  if (!isDiagnoseReport(report)) {
    process.stderr.write(`✗ ${base}/debug/diagnose answered something that is not a diagnosis\n    → is this the node's admin port?\n`);
    return 1;
  }
  process.stdout.write(formatChecklist(report));
  return report.checks.some((c) => c.verdict === 'fail') ? 1 : 0;
}

/**
 * A cluster node still waiting for its backends answers as its /readyz does (src/compose/backend-wait.ts):
 * what it waits for and the last error, said as such (it was taken for another service's port).
 */
function startingNode(body: unknown): string | null {
  const b = body as { reasons?: unknown; node?: unknown; waitingFor?: unknown; waitingMs?: unknown; lastError?: unknown } | null;
  if (typeof b !== 'object' || b === null || !Array.isArray(b.reasons) || !b.reasons.includes('starting')) return null;
  const backend = b.waitingFor === 'nats' || b.waitingFor === 'redis' ? b.waitingFor : null;
  const waited = typeof b.waitingMs === 'number' ? ` for ${Math.round(b.waitingMs / 1000)} s` : '';
  const why = typeof b.lastError === 'string' && b.lastError !== '' ? `: ${b.lastError}` : '';
  const hint = backend ? `check ${backend === 'nats' ? 'NATS_URL' : 'REDIS_URL'} and that ${backend} runs; the node waits up to TIER_BACKEND_START_WAIT_MS, then exits 1` : 'it answers once started';
  return printable(`✗ ${String(b.node)} is starting, waiting for ${backend ?? 'its backends'}${waited}${why}`) + `\n    → ${hint}\n`;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`doctor error: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
