import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { BackupError, exportStore, importStore } from '../../src/data-backup.js';
import { openDataStore, type DataStore } from '../../src/ports/lmdb.js';
import { LmdbRuleStore } from '../../src/ports/rule-store/rule-store-lmdb.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '../..');
const open: DataStore[] = [];
const dir = () => mkdtempSync(join(tmpdir(), 'backup-'));
const store = (d = dir()) => {
  const s = openDataStore(d);
  open.push(s);
  return s;
};
afterEach(async () => {
  await Promise.allSettled(open.splice(0).map((s) => s.close()));
});

/** Every record of every sub-database but meta, for comparing two stores. */
function dump(s: DataStore): Record<string, Array<{ key: unknown; value: unknown }>> {
  const out: Record<string, Array<{ key: unknown; value: unknown }>> = {};
  for (const name of s.root.getKeys()) {
    if (name === 'meta') continue;
    out[String(name)] = [...s.db(String(name)).getRange()].map(({ key, value }) => ({ key, value }));
  }
  return out;
}

describe('data backup (JSON lines)', () => {
  it('exports every record and imports them into an empty store unchanged, hostile ids included', async () => {
    const a = store();
    const rules = await LmdbRuleStore.open(a);
    await rules.createRule('__proto__', { name: 'r', triggers: [{ type: 'cron', cron: '0 7 * * *' }], actions: [{ type: 'notify', title: 't', body: 'b' }] } as never);
    await rules.putSettings('toString', { timeZone: 'Europe/Berlin' });
    await a.db('shadows').put(['hub-1', 'constructor'], { r: { a: { on: true, level: 40 }, v: 3, at: 1_700_000_000_000 } });
    await a.db('nonces').put('hub-1:n1', 1_700_000_000_000);
    await a.flushed();
    const file = join(dir(), 'backup.jsonl');
    const exported = await exportStore(a, file);
    expect(exported.shadows).toBe(1);
    expect(JSON.parse(readFileSync(file, 'utf8').split('\n')[0]!)).toMatchObject({ hubtier: 'data', layout: 1 });

    const b = store();
    const imported = await importStore(b, file, 2);
    expect(imported).toEqual(exported);
    expect(dump(b)).toEqual(dump(a));
    const back = await LmdbRuleStore.open(b);
    expect((await back.listRules('__proto__')).map((r) => r.name)).toEqual(['r']);
    expect(await back.getSettings('toString')).toMatchObject({ timeZone: 'Europe/Berlin' });
  });

  it('refuses a store that already holds records, and files that are not a backup of this layout', async () => {
    const a = store();
    await a.db('hubs').put('hub-1', { hubId: 'hub-1' });
    const file = join(dir(), 'backup.jsonl');
    await exportStore(a, file);
    await expect(importStore(a, file)).rejects.toThrow(/is not empty \(hubs holds records\)/);

    const other = join(dir(), 'other.jsonl');
    writeFileSync(other, '{"hello":1}\n');
    await expect(importStore(store(), other)).rejects.toBeInstanceOf(BackupError);
    writeFileSync(other, '{"hubtier":"data","layout":99,"exportedAt":0}\n');
    await expect(importStore(store(), other)).rejects.toThrow(/data layout 99/);
    writeFileSync(other, '{"hubtier":"data","layout":1,"exportedAt":0}\n{"db":"meta","key":"layout","value":{}}\n');
    await expect(importStore(store(), other)).rejects.toThrow(/:2: expected/);
  });

  it('npm run data -- export / import: a round trip through the command line, and its usage', async () => {
    const from = dir();
    const s = openDataStore(from);
    await s.db('hubs').put('hub-9', { hubId: 'hub-9', homeId: 'home-9' });
    await s.close();
    const file = join(dir(), 'b.jsonl');
    const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/data-cli.ts', ...args], { cwd: ROOT });
    expect((await cli('export', file, '--data-dir', from)).stdout).toMatch(/^exported 1 records \(hubs 1\)/);
    const to = dir();
    expect((await cli('import', file, '--data-dir', to)).stdout).toMatch(/^imported 1 records \(hubs 1\)/);
    const t = store(to);
    expect(t.db('hubs').get('hub-9')).toEqual({ hubId: 'hub-9', homeId: 'home-9' });
    await expect(cli('import', file, '--data-dir', to)).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/data error: DATA_DIR .* is in use by another node/) });
    await expect(cli('nonsense')).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/^usage: npm run data -- export FILE/) });
  });
});
