import { describe, expect, it } from 'vitest';
import { SecretBox } from '../../src/auth/secret-box.js';
import { checkSealingKey } from '../../src/compose/sealing-key-check.js';
import { createLogger } from '../../src/log/logger.js';
import { MemoryHubRegistry } from '../../src/ports/hub-registry/hub-registry-memory.js';
import { DataStoreError } from '../../src/ports/lmdb.js';

const hub = (hubId: string, secret: string) => ({ hubId, homeId: 'home-1', model: undefined, secret, enabled: true, createdAt: 0 });

/** A registry whose hubs are sealed with the keys given, one hub each (or clear text for null). */
async function registryOf(boxes: Array<SecretBox | null>): Promise<MemoryHubRegistry> {
  const registry = new MemoryHubRegistry();
  for (const [i, box] of boxes.entries()) await registry.create(hub(`hub-${i}`, box ? box.seal(`hub-${i}`, 'secret-of-the-hub-0123456789') : 'clear-secret-0123456789'));
  return registry;
}

function recordingLog() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('error');
  log.error = ((obj: Record<string, unknown>, msg: string) => void lines.push({ ...obj, msg })) as typeof log.error;
  return { log, lines };
}

describe('checkSealingKey (a store with hub secrets sealed by a key the node lacks)', () => {
  const oldKey = SecretBox.randomKey();
  const old = new SecretBox(oldKey);
  const fresh = new SecretBox(SecretBox.randomKey());

  it('refuses to start when every hub looked at is sealed with a key it was not given (a store imported without its secret.key)', async () => {
    const { log } = recordingLog();
    const err = await checkSealingKey(await registryOf([old, old, old]), fresh, '/data/here', log).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataStoreError);
    expect((err as Error).message).toBe(`the hub secrets in /data/here are sealed with key ${old.currentId}, which this node was not given: no hub could connect. copy the secret.key of the DATA_DIR they came from beside this store, or set TIER_SECRET_KEY to that key (an older one in TIER_SECRET_KEYS_OLD)`);
  });

  it('starts, and says so, when only some are (a rotation that dropped the old key too soon)', async () => {
    const { log, lines } = recordingLog();
    await checkSealingKey(await registryOf([old, fresh, null]), fresh, '/data/here', log);
    expect(lines).toEqual([expect.objectContaining({ keys: old.currentId, unknown: 1, of: 3, msg: expect.stringMatching(/^some hub secrets are sealed with a key this node was not given/) })]);
  });

  it('starts quietly with the key, an older key among TIER_SECRET_KEYS_OLD, secrets in clear, or no hub', async () => {
    const { log, lines } = recordingLog();
    const rotated = new SecretBox(SecretBox.randomKey(), [oldKey]);
    await checkSealingKey(await registryOf([old, null]), old, 'x', log);
    await checkSealingKey(await registryOf([old, old]), rotated, 'x', log);
    await checkSealingKey(new MemoryHubRegistry(), fresh, 'x', log);
    expect(lines).toEqual([]);
  });
});
