/**
 * The secrets every node of a cluster must share, as a cluster may record them: JWT_SECRET and
 * ADMIN_TOKEN, and the values each node accepts beside them during a rotation, as scrypt digests
 * under a random per-cluster salt (tokens may be low-entropy, so no fast hash), TIER_SECRET_KEY as
 * the key ids sealed values already carry (src/auth/secret-box.ts).
 * Pure: the record itself is src/ports/secret-record/, the start check src/compose/shared-secrets-check.ts.
 */
import { scrypt } from 'node:crypto';
import { promisify } from 'node:util';
import { keyId, parseSecretKey } from './secret-box.js';

export const SHARED_SECRETS = ['JWT_SECRET', 'ADMIN_TOKEN', 'TIER_SECRET_KEY'] as const;
export type SharedSecret = (typeof SHARED_SECRETS)[number];

/**
 * The record's fields: digests of each token and of the values accepted beside it (comma-separated,
 * '' for none), the current key id and the older key ids (comma-separated, '' for none).
 */
export interface SecretDigests {
  JWT_SECRET: string;
  JWT_SECRETS_ACCEPTED: string;
  ADMIN_TOKEN: string;
  ADMIN_TOKENS_ACCEPTED: string;
  TIER_SECRET_KEY: string;
  TIER_SECRET_KEYS_OLD: string;
}

export interface NodeSecrets {
  jwtSecret: string;
  adminToken: string;
  secretKey: string;
  secretKeysOld?: string | undefined;
  jwtSecretsAccepted?: readonly string[] | undefined;
  adminTokensAccepted?: readonly string[] | undefined;
}

/**
 * The token secrets, the record field of the values each accepts beside it, the field of the
 * values the cluster dropped (a rotation's old value: current once, then neither current nor
 * accepted), and the field of the values that were current once.
 */
export const TOKEN_SECRETS = [
  ['JWT_SECRET', 'JWT_SECRETS_ACCEPTED', 'JWT_SECRETS_RETIRED', 'JWT_SECRETS_FORMER'],
  ['ADMIN_TOKEN', 'ADMIN_TOKENS_ACCEPTED', 'ADMIN_TOKENS_RETIRED', 'ADMIN_TOKENS_FORMER'],
] as const;

/** The setting that lists the values accepted beside each token (`JWT_SECRETS_ACCEPTED`), for messages. */
export function acceptedSetting(name: SharedSecret): string {
  return TOKEN_SECRETS.find(([token]) => token === name)?.[1] ?? name;
}

/** Dropped values a record remembers per token, newest first: a rotation a quarter for two years. */
export const RETIRED_KEPT = 8;

const scryptAsync = promisify(scrypt) as (secret: string, salt: string, length: number) => Promise<Buffer>;

export async function secretDigests(salt: string, s: NodeSecrets): Promise<SecretDigests> {
  // the name in the salt: one value used as both tokens gives two unrelated digests
  const digest = async (name: SharedSecret, secret: string) => (await scryptAsync(secret, `${salt}:${name}`, 32)).toString('base64url');
  // an accepted value's digest is made under its token's name, so it compares with another node's current one
  const digests = (name: SharedSecret, values: readonly string[] | undefined) => Promise.all((values ?? []).map((v) => digest(name, v))).then((d) => d.join(','));
  const [jwt, jwtAccepted, admin, adminAccepted] = await Promise.all([
    digest('JWT_SECRET', s.jwtSecret),
    digests('JWT_SECRET', s.jwtSecretsAccepted),
    digest('ADMIN_TOKEN', s.adminToken),
    digests('ADMIN_TOKEN', s.adminTokensAccepted),
  ]);
  const older = (s.secretKeysOld ?? '').split(',').filter(Boolean);
  return {
    JWT_SECRET: jwt,
    JWT_SECRETS_ACCEPTED: jwtAccepted,
    ADMIN_TOKEN: admin,
    ADMIN_TOKENS_ACCEPTED: adminAccepted,
    TIER_SECRET_KEY: keyId(parseSecretKey(s.secretKey, 'TIER_SECRET_KEY')),
    TIER_SECRET_KEYS_OLD: older.map((k, i) => keyId(parseSecretKey(k, `TIER_SECRET_KEYS_OLD[${i}]`))).join(','),
  };
}

/**
 * How one secret of this node stands against the record. `differs`: tokens or hubs of the other
 * nodes are refused here. `rotating` (the sealing key alone): one side opens what the other seals
 * but not the reverse, as while a key rotation rolls over the nodes (README "Hub secrets at rest").
 */
export interface SecretDifference {
  name: SharedSecret;
  /** `retired`: this node accepts a value the cluster dropped (a rotation's old value, perhaps leaked) */
  agreement: 'differs' | 'rotating' | 'retired';
  detail: string;
}

/** The differences between this node's digests and a record's fields; fields not recorded yet compare equal. */
export function compareDigests(recorded: Readonly<Record<string, string>>, mine: SecretDigests): SecretDifference[] {
  const out: SecretDifference[] = [];
  const refused = { JWT_SECRET: "user tokens of the other nodes are refused here (401) and this node's elsewhere", ADMIN_TOKEN: 'the admin token of the other nodes is refused here (401)' };
  for (const [name, acceptedField, retiredField] of TOKEN_SECRETS) {
    // a node that missed a rotation's last roll, or started since with its middle roll's settings,
    // let in tokens signed with the dropped value while every check said ok (review "rotation")
    const retired = list(recorded[retiredField]);
    const stale = list(mine[acceptedField]).filter((d) => retired.includes(d)).length;
    if (stale > 0) {
      const what = name === 'JWT_SECRET' ? 'user tokens signed with it are' : 'it is';
      out.push({ name, agreement: 'retired', detail: `${acceptedField} holds ${stale === 1 ? 'a value' : `${stale} values`} the cluster dropped (a node started since accepts it no more): ${what} let in here` });
    }
    const theirs = recorded[name];
    if (theirs === undefined || theirs === mine[name]) continue;
    const weAccept = list(mine[acceptedField]).includes(theirs);
    const theyAccept = list(recorded[acceptedField]).includes(mine[name]);
    if (weAccept && theyAccept) {
      out.push({ name, agreement: 'rotating', detail: `${name} is not the cluster's current one, but each accepts the other's (${acceptedField}): a rotation is under way` });
    } else if (weAccept) {
      const whose = name === 'JWT_SECRET' ? 'user tokens minted here are' : 'this admin token is';
      out.push({ name, agreement: 'differs', detail: `${name} is not the cluster's current one; this node accepts the cluster's, but ${whose} refused by the nodes not given this value in ${acceptedField} (roll it out there first)` });
    } else {
      out.push({ name, agreement: 'differs', detail: `${name} is not the one the cluster's nodes share${theyAccept ? ' (they accept this one, this node does not accept theirs)' : ''}: ${refused[name]}` });
    }
  }
  const current = recorded.TIER_SECRET_KEY;
  if (current === undefined) return out;
  const theirs = [current, ...list(recorded.TIER_SECRET_KEYS_OLD)];
  const ours = [mine.TIER_SECRET_KEY, ...list(mine.TIER_SECRET_KEYS_OLD)];
  const weOpen = ours.includes(current);
  const theyOpen = theirs.includes(mine.TIER_SECRET_KEY);
  if (weOpen && theyOpen) return out;
  const keys = `the cluster seals hub secrets with key ${current}${theirs.length > 1 ? ` (older: ${theirs.slice(1).join(', ')})` : ''}, this node with ${mine.TIER_SECRET_KEY}${ours.length > 1 ? ` (older: ${ours.slice(1).join(', ')})` : ''}`;
  if (weOpen || theyOpen) {
    const who = weOpen ? 'hubs whose secret this node seals anew are refused by the nodes not given its key' : `hubs sealed with ${current} are refused here ("the node could not admit this hub")`;
    out.push({ name: 'TIER_SECRET_KEY', agreement: 'rotating', detail: `${keys}: a key rotation is under way; ${who}` });
  } else {
    out.push({ name: 'TIER_SECRET_KEY', agreement: 'differs', detail: `${keys}, and neither opens the other's: hubs provisioned through the other nodes are refused here ("the node could not admit this hub")` });
  }
  return out;
}

/**
 * The retired and former fields of a record about to hold `next` (each token's current and
 * accepted digests). A value that was the cluster's current one and is now neither current nor
 * accepted joins the ones dropped before, newest first; a value taken back (TIER_SECRETS_CHANGED)
 * leaves them. A value only ever accepted is never retired: a node of the settings before a
 * rotation's first roll, started during it (a rollout undone, a pod recreated), dropped the new
 * value, and every node of the first roll was then refused for it (review "diff14"). Only fields
 * that change are answered.
 */
export function retiredAfter(recorded: Readonly<Record<string, string>>, next: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, acceptedField, retiredField, formerField] of TOKEN_SECRETS) {
    const current = recorded[name];
    const former = [...new Set([...(current !== undefined && current !== next[name] ? [current] : []), ...list(recorded[formerField])])].slice(0, RETIRED_KEPT);
    const held = (r: Readonly<Record<string, string>>) => [...list(r[name]), ...list(r[acceptedField])];
    const kept = new Set(held(next));
    const dropped = held(recorded).filter((d) => !kept.has(d) && former.includes(d));
    const retired = [...new Set([...dropped, ...list(recorded[retiredField])])].filter((d) => !kept.has(d)).slice(0, RETIRED_KEPT).join(',');
    if (retired !== (recorded[retiredField] ?? '')) out[retiredField] = retired;
    if (former.join(',') !== (recorded[formerField] ?? '')) out[formerField] = former.join(',');
  }
  return out;
}

function list(field: string | undefined): string[] {
  return (field ?? '').split(',').filter(Boolean);
}
