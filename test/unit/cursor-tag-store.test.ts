/**
 * The hub cursor's tag (the numbering of its boot id in events' `src`) kept by every write of the
 * embedded store and by its backups; a backup's rule with `from: null` (refused at save since
 * 2026-12-07) still imported.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testStores } from '../helpers/test-stores.js';
import { exportStore, importStore } from '../../src/data-backup.js';
import { createLogger } from '../../src/log/logger.js';
import { LmdbRuleStore } from '../../src/ports/rule-store/rule-store-lmdb.js';
import { LmdbShadowStore } from '../../src/ports/shadow-store/shadow-store-lmdb.js';

const { dir, store } = testStores('cursor-tag-');

describe('the cursor tag and a from: null rule in the embedded store and its backups (review diff16)', () => {
  it('a desired write to a hub without a device record (events only) keeps the cursor tag (it dropped it)', async () => {
    const s = store();
    const shadows = new LmdbShadowStore(s, { log: createLogger('silent') });
    // storeBoot's write for a numbering begun again: a restart tag
    shadows.writeCursor('hub-1', { boot: 'boot-a', seq: -1, tag: 'RRRRRRRR' }, 3);
    await shadows.flush();
    shadows.writeCursor('hub-1', { boot: 'boot-a', seq: 4, tag: 'RRRRRRRR' }, 3);
    await shadows.flush();
    expect(await shadows.loadCursor('hub-1')).toEqual({ boot: 'boot-a', seq: 4, tag: 'RRRRRRRR' });
    // an app sets a desired value on one of its devices (PATCH .../desired)
    await shadows.setDesired('hub-1', 'siren', { on: true });
    const after = await shadows.loadCursor('hub-1');
    // the tag must survive: the next session of this numbering has to make the same src
    expect(after).toEqual({ boot: 'boot-a', seq: 4, tag: 'RRRRRRRR' });
    await shadows.close();
  });

  it('an export and import keep the cursor tag', async () => {
    const s = store();
    const shadows = new LmdbShadowStore(s, { log: createLogger('silent') });
    shadows.writeCursor('hub-1', { boot: 'boot-a', seq: 4, tag: 'RRRRRRRR' }, 3);
    await shadows.flush();
    await shadows.close();
    const file = join(dir(), 'b.jsonl');
    await exportStore(s, file);
    const t = store();
    await importStore(t, file);
    const back = new LmdbShadowStore(t, { log: createLogger('silent') });
    expect(await back.loadCursor('hub-1')).toEqual({ boot: 'boot-a', seq: 4, tag: 'RRRRRRRR' });
    await back.close();
  });

  it('a backup holding a rule with from: null (saved by earlier releases) is imported (it was refused whole)', async () => {
    const s = store();
    const rules = await LmdbRuleStore.open(s);
    // the store does not validate: this is what an earlier release saved through the API
    await rules.createRule('home-1', {
      name: 'saved before 2026-12-07',
      triggers: [{ type: 'state', hub: 'hub-1', device: 'door', attr: 'open', from: null, to: true }],
      actions: [{ type: 'notify', title: 't', body: 'b' }],
    } as never);
    await rules.close();
    await s.flushed();
    const file = join(dir(), 'b.jsonl');
    await exportStore(s, file);
    const t = store();
    let err: unknown = null;
    try {
      await importStore(t, file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeNull();
  });
});
