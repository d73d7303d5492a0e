import { randomBytes } from 'node:crypto';
import { acceptedSetting, compareDigests, retiredAfter, secretDigests, TOKEN_SECRETS, type SecretDifference, type SecretDigests } from '../auth/secret-digests.js';
import { ConfigError, type Config } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import type { SecretRecord } from '../ports/secret-record/secret-record.js';

type Secrets = Pick<Config, 'jwtSecret' | 'adminToken' | 'secretKey' | 'secretKeysOld' | 'secretsChanged' | 'jwtSecretsAccepted' | 'adminTokensAccepted'>;

/** The digests computed at start, by the configuration they were computed from: diagnose reuses them (scrypt is slow by design). */
const computed = new WeakMap<Secrets, { salt: string; digests: Promise<SecretDigests> }>();

/**
 * Refuses to start a cluster node whose JWT_SECRET, ADMIN_TOKEN or TIER_SECRET_KEY is not the
 * cluster's: such a node started ready and refused the other nodes' user tokens, admin token and
 * hubs (until 2026-12-05). The first node records its digests (src/auth/secret-digests.ts); a
 * secret named in TIER_SECRETS_CHANGED (a rotation) is recorded anew instead, as is a token whose
 * node and record each accept the other's value (JWT_SECRETS_ACCEPTED, ADMIN_TOKENS_ACCEPTED); a
 * sealing key that opens the record's or is opened by it (a key rotation rolling over the nodes)
 * is accepted and recorded, so the record follows the last node started.
 */
export async function checkSharedSecrets(record: SecretRecord, config: Secrets, log: Logger): Promise<void> {
  if (config.secretKey === undefined) throw new Error('cluster mode needs TIER_SECRET_KEY');
  const salt = await record.salt(randomBytes(16).toString('base64url'));
  const mine = await secretDigests(salt, { ...config, secretKey: config.secretKey });
  computed.set(config, { salt, digests: Promise.resolve(mine) });
  const recorded = await record.claim({ ...mine });
  const changed = new Set(config.secretsChanged);
  const differences = compareDigests(recorded, mine);
  const retired = differences.filter((d) => d.agreement === 'retired' && !changed.has(d.name));
  if (retired.length > 0) {
    const names = retired.map((d) => d.name).join(', ');
    throw new ConfigError(
      `${names}: ${retired.map((d) => d.detail).join('. ')}. A rotation's old value, dropped by the other nodes, perhaps for a leak: ` +
        `remove it from ${retired.map((d) => acceptedSetting(d.name)).join(' and ')}; to take it back on purpose, start with TIER_SECRETS_CHANGED=${retired.map((d) => d.name).join(',')} (README "Cluster secrets")`,
    );
  }
  const refused = differences.filter((d) => d.agreement === 'differs' && !changed.has(d.name));
  if (refused.length > 0) {
    const names = refused.map((d) => d.name).join(', ');
    throw new ConfigError(
      `${names}: not the value the other nodes of this cluster were started with (recorded in ${record.where}). ${refused.map((d) => d.detail).join('. ')}. ` +
        `Give this node the same ${names} as the other nodes; for a rotation, start the nodes that bring the new value with TIER_SECRETS_CHANGED=${refused.map((d) => d.name).join(',')} (README "Cluster secrets")`,
    );
  }
  const update: Partial<SecretDigests> & Record<string, string> = {};
  for (const d of differences) {
    if (d.name === 'TIER_SECRET_KEY' || d.agreement === 'retired') continue;
    update[d.name] = mine[d.name];
    if (d.agreement === 'rotating') log.warn({ secret: d.name }, `${d.detail}: recorded this node's`);
    else log.warn({ secret: d.name }, `${d.name} changed (TIER_SECRETS_CHANGED): recorded this node's; nodes still on the old value refuse its tokens until restarted with the new one, then remove TIER_SECRETS_CHANGED`);
  }
  // the values accepted beside each token follow the last node started, as the keys do; what it no
  // longer accepts is remembered as dropped, and a node accepting it again is refused
  for (const [, accepted] of TOKEN_SECRETS) if (recorded[accepted] !== mine[accepted]) update[accepted] = mine[accepted];
  Object.assign(update, retiredAfter(recorded, { ...recorded, ...update }));
  if (recorded.TIER_SECRET_KEY !== mine.TIER_SECRET_KEY || recorded.TIER_SECRET_KEYS_OLD !== mine.TIER_SECRET_KEYS_OLD) {
    update.TIER_SECRET_KEY = mine.TIER_SECRET_KEY;
    update.TIER_SECRET_KEYS_OLD = mine.TIER_SECRET_KEYS_OLD;
    const key = differences.find((d) => d.name === 'TIER_SECRET_KEY');
    if (key) log.warn({ secret: key.name }, key.detail);
  }
  await record.replace(update);
}

/**
 * This node's secrets against the record now, for `/debug/diagnose`: another node's rotation
 * changes the record while this one runs; a record made anew (another salt) is compared anew.
 */
export function sharedSecretsProbe(record: SecretRecord, config: Secrets): () => Promise<{ recorded: boolean; differences: SecretDifference[] }> {
  return async () => {
    const recorded = await record.read();
    const salt = recorded.salt;
    if (salt === undefined || config.secretKey === undefined) return { recorded: false, differences: [] };
    let cached = computed.get(config);
    if (cached?.salt !== salt) computed.set(config, (cached = { salt, digests: secretDigests(salt, { ...config, secretKey: config.secretKey }) }));
    return { recorded: true, differences: compareDigests(recorded, await cached.digests) };
  };
}
