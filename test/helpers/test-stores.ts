import { afterEach } from 'vitest';
import { tempDir } from '../../load/harness/exit-hooks.js';
import { openDataStore, type DataStore } from '../../src/ports/lmdb.js';

/** Embedded data stores a test file opens in temporary directories, each closed after its test. Call at the file's top level. */
export function testStores(prefix: string): { dir(): string; store(dir?: string): DataStore } {
  const open: DataStore[] = [];
  afterEach(async () => {
    await Promise.allSettled(open.splice(0).map((s) => s.close()));
  });
  const dir = () => tempDir(prefix);
  return {
    dir,
    store(d = dir()) {
      const s = openDataStore(d);
      open.push(s);
      return s;
    },
  };
}
