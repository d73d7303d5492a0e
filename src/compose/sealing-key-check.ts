import type { SecretBox } from '../auth/secret-box.js';
import type { Logger } from '../log/logger.js';
import type { HubRegistry } from '../ports/hub-registry/hub-registry.js';
import { DataStoreError } from '../ports/lmdb.js';

/** Hubs whose secrets are looked at, from the start of the registry: a wrong key shows on all of them. */
const SAMPLE = 50;

/**
 * Refuses to start when the hub secrets the registry holds are sealed with a key this node was not
 * given: a store imported without its `secret.key` (or a cluster given another TIER_SECRET_KEY)
 * started ready and refused every hub `internal`. Only some of them (a rotation's old key dropped
 * too soon): those hubs fail, the rest go on, so the node starts and says so.
 */
export async function checkSealingKey(registry: HubRegistry, box: SecretBox, where: string, log: Logger): Promise<void> {
  const { hubs } = await registry.list({ limit: SAMPLE });
  const missing = new Map<string, number>();
  for (const hub of hubs) {
    const id = box.missingKey(hub.secret);
    if (id !== null) missing.set(id, (missing.get(id) ?? 0) + 1);
  }
  if (missing.size === 0) return;
  const ids = [...missing.keys()].join(', ');
  const fix = 'copy the secret.key of the DATA_DIR they came from beside this store, or set TIER_SECRET_KEY to that key (an older one in TIER_SECRET_KEYS_OLD)';
  const unknown = [...missing.values()].reduce((a, b) => a + b, 0);
  if (unknown === hubs.length) {
    throw new DataStoreError(`the hub secrets in ${where} are sealed with key ${ids}, which this node was not given: no hub could connect. ${fix}`, where);
  }
  log.error({ keys: ids, unknown, of: hubs.length }, `some hub secrets are sealed with a key this node was not given: those hubs are refused until it is. ${fix}`);
}
