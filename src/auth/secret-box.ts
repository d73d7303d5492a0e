/**
 * Hub secrets at rest: sealed with AES-256-GCM under a key given to the node (`TIER_SECRET_KEY`),
 * so the store (LMDB file, backup, Redis, an RDB dump) holds no hub secret in clear. The hub id is
 * the additional authenticated data: a sealed secret copied into another hub's record does not
 * open. Each sealed value names its key (`s1.<key id>.<iv|ciphertext|tag>`, base64url), so keys
 * rotate: a node opens values of its current key and of the older keys it is given
 * (`TIER_SECRET_KEYS_OLD`), seals with the current one, and `npm run fleet -- reseal` rewrites
 * every record under the current key. A value without the `s1.` form is a secret stored in clear
 * before sealing existed: it is read as it is (and resealed by the same command).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { TierError } from '../errors.js';

const FORM = 's1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** The id a sealed value carries for its key: 8 hex digits of the key's SHA-256. */
export function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

/**
 * A key from configuration: 64 hex digits, or base64/base64url of 32 bytes. Throws naming `name`
 * and the accepted forms.
 */
export function parseSecretKey(raw: string, name: string): Buffer {
  const s = raw.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(s) ? Buffer.from(s, 'hex') : /^[A-Za-z0-9+/_-]{43}=?$/.test(s) ? Buffer.from(s, 'base64url') : null;
  if (key === null || key.length !== 32) throw new TypeError(`${name}: expected 32 bytes as 64 hex digits or base64 (e.g. \`openssl rand -hex 32\`)`);
  return key;
}

export class SecretBox {
  private readonly keys = new Map<string, Buffer>();
  /** the id of the key new values are sealed with */
  readonly currentId: string;

  /** @param current the sealing key; @param older keys still accepted for opening */
  constructor(
    private readonly current: Buffer,
    older: readonly Buffer[] = [],
  ) {
    this.currentId = keyId(current);
    for (const k of [current, ...older]) this.keys.set(keyId(k), k);
  }

  /** A fresh random key (an embedded node's first start without TIER_SECRET_KEY, tests). */
  static randomKey(): Buffer {
    return randomBytes(32);
  }

  seal(hubId: string, secret: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.current, iv);
    cipher.setAAD(Buffer.from(hubId));
    const body = Buffer.concat([iv, cipher.update(secret, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${FORM}.${this.currentId}.${body.toString('base64url')}`;
  }

  /**
   * The secret in clear. A value in clear (stored before sealing) is answered as it is. Throws
   * `internal` (temporary: the operator must give the node the key) when the value names a key
   * this node lacks, or does not open with it (damaged, or sealed for another hub id).
   */
  open(hubId: string, stored: string): string {
    const parts = sealedParts(stored);
    if (parts === null) return stored;
    const key = this.keys.get(parts.keyId);
    if (!key) throw new TierError('internal', `hub ${hubId}: its secret is sealed with key ${parts.keyId}, which this node was not given (TIER_SECRET_KEY, TIER_SECRET_KEYS_OLD)`);
    const body = Buffer.from(parts.body, 'base64url');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, body.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(hubId));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      return Buffer.concat([decipher.update(body.subarray(IV_BYTES, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch (err) {
      throw new TierError('internal', `hub ${hubId}: its sealed secret does not open with key ${parts.keyId} (damaged, or copied from another hub)`, { cause: err });
    }
  }

  /** The id of the key the value is sealed with when this box lacks it, else null (in clear, or a key it has). */
  missingKey(stored: string): string | null {
    const id = sealedParts(stored)?.keyId;
    return id !== undefined && !this.keys.has(id) ? id : null;
  }

  /** True when the value is in clear or sealed with a key other than the current one. */
  needsReseal(stored: string): boolean {
    return sealedParts(stored)?.keyId !== this.currentId;
  }
}

/** True for a value in the sealed form (whatever its key). */
export function isSealed(stored: string): boolean {
  return sealedParts(stored) !== null;
}

function sealedParts(stored: string): { keyId: string; body: string } | null {
  const m = /^s1\.([0-9a-f]{8})\.([A-Za-z0-9_-]{40,})$/.exec(stored);
  return m ? { keyId: m[1]!, body: m[2]! } : null;
}
