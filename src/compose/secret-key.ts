/**
 * The key that seals hub secrets at rest (src/auth/secret-box.ts), from the configuration:
 * TIER_SECRET_KEY (required in cluster mode: config.ts refuses to start without it), else in the
 * embedded default a key made on the first start and kept in `DATA_DIR/secret.key` (mode 0600),
 * beside the LMDB store and not in it: a backup (`npm run data -- export`) or a copy of the store
 * file alone holds no secret that opens. `DATA_DIR=:memory:` gets a key for the process's life.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { makeDirs } from '../ports/make-dirs.js';
import { join, resolve } from 'node:path';
import { parseSecretKey, SecretBox } from '../auth/secret-box.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import { MEMORY } from './ports.js';

export const SECRET_KEY_FILE = 'secret.key';

export function secretBoxFor(config: Pick<Config, 'secretKey' | 'secretKeysOld' | 'dataDir'>, log?: Logger): SecretBox {
  const older = (config.secretKeysOld ?? '').split(',').filter(Boolean).map((k, i) => parseSecretKey(k, `TIER_SECRET_KEYS_OLD[${i}]`));
  if (config.secretKey !== undefined) return new SecretBox(parseSecretKey(config.secretKey, 'TIER_SECRET_KEY'), older);
  if (config.dataDir === MEMORY) return new SecretBox(SecretBox.randomKey(), older);
  const dir = resolve(config.dataDir);
  const file = join(dir, SECRET_KEY_FILE);
  let raw: string | null = null;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (raw !== null) return new SecretBox(parseSecretKey(raw, file), older);
  const key = SecretBox.randomKey();
  makeDirs(resolve(dir), 0o700);
  // 'wx': two nodes starting on one directory cannot both write a key (the store's lock refuses the second anyway)
  writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  log?.warn({ file }, 'TIER_SECRET_KEY not set: made a key that seals hub secrets and kept it beside the store; back it up apart from data backups (without it no hub can connect), or set TIER_SECRET_KEY');
  return new SecretBox(key, older);
}
