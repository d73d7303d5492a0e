import { AdminTokens } from '../auth/admin-tokens.js';
import { Authenticator } from '../auth/authenticator.js';
import type { RevocationList } from '../auth/revocations.js';
import type { Config } from '../config/config.js';
import type { NodeMetrics } from '../admin/metrics.js';
import { AdminHosts } from '../admin/admin-hosts.js';
import { GuessLimit, guessWatch, type GuessWatch } from '../auth/guess-limit.js';
import type { Logger } from '../log/logger.js';

/**
 * Who is calling, as the node checks it: one check of the admin token for the API, the admin port
 * and its pages (a rotation lets in the same tokens everywhere), and the user tokens' verifier.
 * What a rotation's old values still let in is counted (`tier_auth_accepted_secret_total`).
 */
export function nodeAuth(config: Config, metrics: NodeMetrics, log: Logger, revoked: RevocationList, sharedNow: () => Promise<number | null>): { adminTokens: AdminTokens; auth: Authenticator; gate: AdminGate } {
  const adminTokens = new AdminTokens(config.adminToken, config.adminTokensAccepted, () => metrics.acceptedSecret.inc({ kind: 'admin' }));
  // a rotation's old values are let in for as long as they are listed: said at each start, so one left behind shows
  const jwtAccepted = config.jwtSecretsAccepted?.length ?? 0;
  const adminAccepted = config.adminTokensAccepted?.length ?? 0;
  if (jwtAccepted + adminAccepted > 0) log.warn({ JWT_SECRETS_ACCEPTED: jwtAccepted, ADMIN_TOKENS_ACCEPTED: adminAccepted }, "values accepted beside JWT_SECRET and ADMIN_TOKEN (a rotation's): remove them once it is done");
  const gate = adminGate(config, metrics, log);
  const auth = new Authenticator(adminTokens, config.jwtSecret, {
    // one count of wrong admin tokens per address, whichever port they come to
    ...(gate.guesses ? { guesses: gate.guesses } : {}),
    requireExp: config.jwtRequireExp,
    revoked,
    audience: config.jwtAudience,
    issuer: config.jwtIssuer,
    skewS: config.authSkewS,
    sharedNow,
    jwtSecretsAccepted: config.jwtSecretsAccepted,
    onAccepted: () => metrics.acceptedSecret.inc({ kind: 'jwt' }),
  });
  return { adminTokens, auth, gate };
}

/** What the admin port checks before its routes: the names it answers to and the wrong tokens by address. */
export interface AdminGate {
  hosts: AdminHosts;
  /** absent: TIER_ADMIN_TOKEN_GUESSES=0 */
  guesses?: GuessWatch;
}

export function adminGate(config: Config, metrics: NodeMetrics, log: Logger): AdminGate {
  return {
    hosts: adminHostsOf(config),
    ...(config.adminTokenGuesses === 0 ? {} : { guesses: guessWatch(log, (reason) => metrics.adminRefused.inc({ reason }), new GuessLimit({ limit: config.adminTokenGuesses })) }),
  };
}

/** The names the admin port answers to besides IP addresses and localhost: ADMIN_HOST and ADMIN_ALLOWED_HOSTS (also the start-up wait's port). */
export function adminHostsOf(config: Config): AdminHosts {
  return new AdminHosts([config.adminHost, ...config.adminAllowedHosts]);
}
