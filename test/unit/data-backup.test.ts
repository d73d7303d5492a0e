import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { existsSync, lstatSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { testStores } from '../helpers/test-stores.js';
import { BackupError, exportStore, importStore } from '../../src/data-backup.js';
import { KNOWN_DBS, SHADOWS_LAYOUT } from '../../src/data-backup-check.js';
import { MAX_LINE_BYTES } from '../../src/data-backup-file.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { diskPorts } from '../../src/compose/disk-ports.js';
import { loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/log/logger.js';
import { LmdbHubRegistry, LmdbNonceStore } from '../../src/ports/hub-registry/hub-registry-lmdb.js';
import { LmdbPushQueue } from '../../src/ports/push-queue/push-queue-lmdb.js';
import { openDataStore, type DataStore } from '../../src/ports/lmdb.js';
import { LmdbRuleStore } from '../../src/ports/rule-store/rule-store-lmdb.js';
import { LmdbShadowStore } from '../../src/ports/shadow-store/shadow-store-lmdb.js';
import { scriptArgs } from '../helpers/server-process.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '../..');
const { dir, store } = testStores('backup-');

const HUB_9 = { hubId: 'hub-9', homeId: 'home-9', secret: 's3cret', enabled: true, createdAt: 1_700_000_000_000, model: undefined };

/** A store as the adapters write it: a hub, a shadow, a rule with an alias named like an Object.prototype member, settings, a nonce. */
async function fill(s: DataStore): Promise<void> {
  await new LmdbHubRegistry(s).create({ ...HUB_9, hubId: 'hub-1', homeId: 'toString' });
  const shadows = new LmdbShadowStore(s, { log: createLogger('silent') });
  await shadows.writeDevices('hub-1', [{ d: 'lamp', k: 'light' }], [], true);
  shadows.writeReported('hub-1', 'lamp', { kind: 'light', model: undefined, reported: { on: true, level: 40 }, reportedVersion: 3, reportedAt: 1_700_000_000_000, desired: {}, desiredVersion: 0 }, 1);
  await shadows.close();
  const rules = await LmdbRuleStore.open(s);
  await rules.createRule('toString', { name: 'r', triggers: [{ type: 'cron', cron: '0 7 * * *' }], devices: { constructor: { hub: 'hub-1', device: 'lamp' } }, actions: [{ type: 'notify', title: 't', body: 'b' }] } as never);
  await rules.putSettings('toString', { timeZone: 'Europe/Berlin' });
  await rules.close();
  // a claim as the store writes it (the index entry holds its monotonic expiry) and one index entry of the first layout (null)
  const nonces = new LmdbNonceStore(s);
  await nonces.claim('hub-1:n1', 600_000);
  await nonces.close();
  await s.db('nonces').put([1_700_000_000_000, 'hub-1:n0'], null);
  await s.db('nonces').put('hub-1:n0', 1_700_000_000_000);
  await s.flushed();
}

/** Push records as the LMDB queue writes them: a dead letter, a job waiting for its retry, dedup entries, a counter. */
async function fillPush(s: DataStore): Promise<void> {
  const notification = (dedupKey: string) => ({ homeId: 'home-9', title: 't', body: 'b', dedupKey });
  const failing = () => Promise.reject(new Error('receiver down'));
  const dead = await LmdbPushQueue.open(s, { sender: failing, attempts: 1 });
  await dead.enqueue(notification('k1'));
  await dead.drain();
  await dead.close();
  // its retry's timer never fires: the job stays stored, due later
  const retrying = await LmdbPushQueue.open(s, { sender: failing, attempts: 2, timer: () => () => {} });
  await retrying.enqueue(notification('k2'));
  await retrying.close();
}

/**
 * A FIFO in `d`, and a process copying what is written to it into `copy`, or writing `from` to it
 * (then opening it again and again, closed at once: a second open of the path reads an empty pipe,
 * where it would wait for a writer for ever).
 */
function fifo(d: string, io: { copy: string } | { from: string }) {
  const path = join(d, 'fifo');
  execFileSync('mkfifo', [path]);
  const child = 'copy' in io ? spawn('sh', ['-c', 'cat "$0" > "$1"', path, io.copy]) : spawn('sh', ['-c', 'cat "$0" > "$1"; while :; do : > "$1"; done', io.from, path]);
  return { path, exited: once(child, 'exit'), kill: () => child.kill() };
}

/** Every record of every sub-database but meta, for comparing two stores. */
function dump(s: DataStore): Record<string, Array<{ key: unknown; value: unknown }>> {
  const out: Record<string, Array<{ key: unknown; value: unknown }>> = {};
  for (const name of s.root.getKeys()) {
    const records = [...s.db(String(name)).getRange()].map(({ key, value }) => ({ key, value }));
    // an empty sub-database is no record (the import opens the ones it writes before its transaction)
    if (name !== 'meta' && records.length > 0) out[String(name)] = records;
  }
  return out;
}

describe('data backup (JSON lines)', () => {
  it('exports every record and imports them into an empty store unchanged, hostile ids included', async () => {
    const a = store();
    await fill(a);
    const file = join(dir(), 'backup.jsonl');
    const exported = await exportStore(a, file);
    expect(exported).toMatchObject({ hubs: 1, shadows: 4, rules: 3 });
    expect(JSON.parse(readFileSync(file, 'utf8').split('\n')[0]!)).toMatchObject({ hubtier: 'data', layout: 2 });

    const b = store();
    const imported = await importStore(b, file);
    expect(imported).toEqual(exported);
    expect(dump(b)).toEqual(dump(a));
    const back = await LmdbRuleStore.open(b);
    expect((await back.listRules('toString')).map((r) => r.name)).toEqual(['r']);
    expect(await back.getSettings('toString')).toMatchObject({ timeZone: 'Europe/Berlin' });
  });

  it('a store as the embedded node writes it (every adapter opened, an audit entry and a revocation) exports and imports; every sub-database it opens is one the import knows', async () => {
    const from = dir();
    const { config } = loadConfig({ DATA_DIR: from, ADMIN_TOKEN: 'backup-admin-token-0123456789', JWT_SECRET: 'backup-jwt-secret-0123456789abcdef', LOG_LEVEL: 'silent' });
    const timers = new TimerWheel();
    const ports = await diskPorts(config, timers, createLogger('silent'));
    await ports.registry.create({ ...HUB_9 });
    ports.audit!.record({ id: 'a-1', at: Date.now(), actor: { kind: 'admin' }, from: { node: 'n-1' }, action: 'command', outcome: 'ok', homeId: 'home-9', hubId: 'hub-9' });
    await ports.audit!.flushed();
    await ports.revocations!.add({ jti: 'j-1', exp: Math.floor(Date.now() / 1000) + 60 });
    await ports.close!();
    timers.close();

    const a = store(from);
    const unknown = [...a.root.getKeys()].map(String).filter((name) => name !== 'meta' && !KNOWN_DBS.has(name));
    expect(unknown).toEqual([]);
    const file = join(dir(), 'backup.jsonl');
    const exported = await exportStore(a, file);
    expect(exported).toMatchObject({ audit: 1, 'audit-bucket': 1, revocations: 1, hubs: 1 });
    const b = store();
    await importStore(b, file);
    expect(dump(b)).toEqual(dump(a));
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
    writeFileSync(other, '{"hubtier":"data","layout":3,"exportedAt":0}\n');
    await expect(importStore(store(), other)).rejects.toThrow(/data layout 3; this version reads 1 and 2: a newer version wrote it/);
  });

  it('imports a backup of data layout 1 (releases before 2026-12-05): its shadow records are rewritten when the node opens the store', async () => {
    const file = join(dir(), 'old.jsonl');
    const lines = [
      { hubtier: 'data', layout: 1, exportedAt: 0, ends: true },
      { db: 'shadows', key: 'h1', value: [1, 'boot', 3] },
      { db: 'shadows', key: ['h1', 'lock'], value: ['lock', 'L-1', ['locked', true], 4, 5, ['pin', '4711'], 2] },
      { hubtier: 'end', records: 2 },
    ];
    writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const b = store();
    expect(await importStore(b, file)).toEqual({ shadows: 2 });
    const shadows = new LmdbShadowStore(b, { log: createLogger('silent') });
    expect((await shadows.load('h1')).lock).toMatchObject({ kind: 'lock', reported: { locked: true }, desired: { pin: '4711' } });
    await shadows.close();
    const again = join(dir(), 'again.jsonl');
    await exportStore(b, again);
    expect(JSON.parse(readFileSync(again, 'utf8').split('\n')[0]!), 'exported as layout 2: a release before refuses it').toMatchObject({ layout: 2 });
  });

  it('checks the whole file before writing: a bad or cut-short backup writes nothing and names its line; the good one then imports', async () => {
    const a = store();
    await fill(a);
    const good = join(dir(), 'good.jsonl');
    await exportStore(a, good);
    const exported = readFileSync(good, 'utf8').trimEnd().split('\n');
    const last = exported.length; // the end line
    // the cases edit records as a hand would: their end line carries no digest (as before 2026-12-06), else each is refused for it first
    const lines = [...exported.slice(0, -1), JSON.stringify({ hubtier: 'end', records: last - 2 })];
    const at = (db: string, key?: string) => lines.findIndex((l) => l.startsWith(`{"db":"${db}","key":${key ?? ''}`)) + 1;
    const bad = (n: number, line: string) => lines.map((l, i) => (i === n - 1 ? line : l));
    const rule = JSON.parse(lines[at('rules', '["rule"') - 1]!) as { key: unknown; value: string };
    const withRule = (change: (r: Record<string, unknown>) => void) => {
      const item = JSON.parse(rule.value) as Record<string, unknown>;
      change(item);
      return JSON.stringify({ db: 'rules', key: rule.key, value: JSON.stringify(item) });
    };
    const hub = at('hubs');
    const cases: Array<[string, string[], RegExp]> = [
      ['cut mid-line', [...lines.slice(0, last - 2), lines[last - 2]!.slice(0, 20)], new RegExp(`:${last - 1}: not JSON`)],
      // made with `npm run data -- export -` (no -s): npm's banner first, named as such
      ['behind npm\'s banner', ['', '> hubtier@0.1.0 data', '> node --import tsx src/data-cli.ts export -', '', ...lines], /:2: npm's "> …" banner, not JSON: .*npm run -s data -- export -/],
      ['cut at a line end', lines.slice(0, last - 1), new RegExp(`:${last - 1}: cut short \\(no end line after ${last - 2} records\\)`)],
      ['a key that is an object', bad(hub, '{"db":"hubs","key":{"a":1},"value":1}'), new RegExp(`:${hub}: hubs record: .*key \\{"a":1\\} is not a string`)],
      ['a hub that is not a record', bad(hub, '{"db":"hubs","key":"hub-1","value":"garbage"}'), new RegExp(`:${hub}: hubs record`)],
      ['a hub field of the wrong type', bad(hub, lines[hub - 1]!.replace(',true,', ',"yes",')), new RegExp(`:${hub}: hubs record: .*enabled must be a boolean`)],
      ['a hub id no API accepts', bad(hub, lines[hub - 1]!.replace('"hub-1"', '"evil.*"')), new RegExp(`:${hub}: hubs record: hub "evil\\.\\*" is not a valid id`)],
      ['a home id no API accepts', bad(hub, lines[hub - 1]!.replace('"toString"', '"a b:\\n*"')), new RegExp(`:${hub}: hubs record: home .* is not a valid id`)],
      ['a shadow of the wrong types', bad(at('shadows', '[0'), lines[at('shadows', '[0') - 1]!.replace(/"value":.*/, '"value":["a","b","c"]}')), new RegExp(`:${at('shadows', '[0')}: shadows record`)],
      ['a name list that is not one', bad(at('shadow-names'), lines[at('shadow-names') - 1]!.replace(/"value":.*/, '"value":"garbage"}')), new RegExp(`:${at('shadow-names')}: shadow-names record`)],
      ['a rule that is not JSON', bad(at('rules', '["rule"'), JSON.stringify({ db: 'rules', key: rule.key, value: '{not json' })), new RegExp(`:${at('rules', '["rule"')}: rules record`)],
      ['a rule the API refuses', bad(at('rules', '["rule"'), withRule((r) => (r.triggers = [{ type: 'cron', cron: 'garbage pattern' }]))), new RegExp(`:${at('rules', '["rule"')}: rules record: triggers\\[0\\]\\.cron`)],
      ['an index entry without its hub', [...lines.slice(0, last - 1), '{"db":"hub-homes","key":["h","a1"],"value":null}', '{"hubtier":"end","records":' + (last - 1) + '}'], new RegExp(`:${last}: hub-homes record: no hub "a1"`)],
      ['an unknown sub-database', [lines[0]!, ...Array.from({ length: 40 }, (_, i) => `{"db":"x${i}","key":"k","value":1}`)], /:2: unknown sub-database "x0"/],
      // the export's digest: one character of a value changed (the record still valid), or a record's line written twice and the count mended
      ['a value changed after the export', exported.map((l, i) => (i === hub - 1 ? l.replace('"hub-1"', '"hub-7"') : l)), new RegExp(`:${last}: the lines before the end line are not those exported`)],
      ['a record repeated after the export', [...exported.slice(0, hub), exported[hub - 1]!, ...exported.slice(hub, -1), JSON.stringify({ ...JSON.parse(exported[last - 1]!), records: last - 1 })], new RegExp(`:${last + 1}: the lines before the end line are not those exported`)],
      // the same without a digest (a backup before 2026-12-06): the later line silently won, counted twice
      ['a record twice, its count mended', [...lines.slice(0, hub), lines[hub - 1]!, ...lines.slice(hub, -1), JSON.stringify({ hubtier: 'end', records: last - 1 })], new RegExp(`:${hub + 1}: hubs record: a second record with the key "hub-1"`)],
    ];
    const target = store();
    for (const [what, content, message] of cases) {
      const file = join(dir(), 'bad.jsonl');
      writeFileSync(file, content.join('\n') + '\n');
      await expect(importStore(target, file), what).rejects.toThrow(message);
      expect(dump(target), what).toEqual({});
    }
    // bytes, not text: a line that is not UTF-8, and one longer than any record (read in bounded memory)
    const bytes = (file: string, ...parts: Array<string | Buffer>) => (writeFileSync(file, Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)))), file);
    const [before, after] = [lines.slice(0, hub - 1).join('\n') + '\n', '\n' + lines.slice(hub).join('\n') + '\n'];
    const invalid = bytes(join(dir(), 'utf8.jsonl'), before, lines[hub - 1]!.replace('"hub-1"', '"hub-'), Buffer.from([0xc0, 0xaf]), '"', lines[hub - 1]!.slice(lines[hub - 1]!.indexOf('"hub-1"') + 7), after);
    await expect(importStore(target, invalid)).rejects.toThrow(new RegExp(`:${hub}: not valid UTF-8`));
    const long = bytes(join(dir(), 'long.jsonl'), before, '{"db":"audit","key":"', Buffer.alloc(MAX_LINE_BYTES, 'a'), '","value":1}', after);
    await expect(importStore(target, long)).rejects.toThrow(new RegExp(`:${hub}: a line longer than 64 MiB`));
    expect(dump(target)).toEqual({});
    await importStore(target, good);
    expect(dump(target)).toEqual(dump(a));
  });

  it("leaves out the history's records of a store from before history.mdb (nothing reads them)", async () => {
    const a = store();
    await fill(a);
    const file = join(dir(), 'old.jsonl');
    await exportStore(a, file);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    const records = [...lines.slice(1, -1), '{"db":"history","key":["hub-1",5],"value":{"e":1}}', '{"db":"history-range","key":"hub-1","value":{"first":1,"top":5}}'];
    writeFileSync(file, [lines[0]!, ...records, JSON.stringify({ hubtier: 'end', records: records.length })].join('\n') + '\n');
    const target = store();
    await importStore(target, file);
    expect(dump(target)).toEqual(dump(a));
  });

  it('writes in one transaction: an error part-way commits nothing', async () => {
    const a = store();
    await fill(a);
    // more records than the 1,000 an import once committed at a time
    await a.root.transaction(() => {
      for (let i = 0; i < 1_500; i++) void a.db('nonces').put(`hub-1:n${i}`, 1_700_000_000_000 + i);
    });
    const file = join(dir(), 'b.jsonl');
    await exportStore(a, file);
    const target = store();
    let puts = 0;
    // the 1,200th write fails (a full disk, say): the ones before it must not stay
    const failing: DataStore = {
      ...target,
      db: ((name: string) => {
        const db = target.db(name);
        return Object.assign(Object.create(db) as typeof db, {
          put: (key: never, value: never) => {
            if (++puts === 1_200) throw new Error('MDB_MAP_FULL');
            return db.put(key, value);
          },
        });
      }) as DataStore['db'],
    };
    await expect(importStore(failing, file)).rejects.toThrow(/MDB_MAP_FULL/);
    expect(puts).toBe(1_200);
    expect(dump(target)).toEqual({});
  });

  it('export writes a new file of mode 0600 renamed over FILE: an existing file\'s mode and a symlink are not kept', async () => {
    const a = store();
    await fill(a);
    const d = dir();
    const existing = join(d, 'existing.jsonl');
    writeFileSync(existing, 'precious\n', { mode: 0o644 });
    await exportStore(a, existing);
    expect(lstatSync(existing).mode & 0o777).toBe(0o600);
    expect(readFileSync(existing, 'utf8')).toMatch(/^\{"hubtier":"data"/);
    const target = join(d, 'target.txt');
    writeFileSync(target, 'not a backup\n', { mode: 0o644 });
    const link = join(d, 'link.jsonl');
    symlinkSync(target, link);
    await exportStore(a, link);
    expect(lstatSync(link).isSymbolicLink()).toBe(false);
    expect(lstatSync(link).mode & 0o777).toBe(0o600);
    expect(readFileSync(target, 'utf8')).toBe('not a backup\n');
    expect(readdirSync(d).sort()).toEqual(['existing.jsonl', 'link.jsonl', 'target.txt']);
  });

  it('refuses what a node could not read, naming the line: a newer shadow layout, push bookkeeping, attribute values, rule ids, a hub out of its home\'s index, Infinity, a key LMDB cannot hold', async () => {
    const a = store();
    await fill(a);
    await fillPush(a);
    // a second hub: a backup with no home index at all is the first layout's, which the registry rebuilds
    await new LmdbHubRegistry(a).create(HUB_9);
    const good = join(dir(), 'good.jsonl');
    await exportStore(a, good);
    const [header, ...rest] = readFileSync(good, 'utf8').trimEnd().split('\n');
    const records = rest.slice(0, -1);
    const line = (prefix: string) => records.findIndex((l) => l.startsWith(prefix));
    /** The backup with the first record starting with `prefix` changed (or dropped: null), and the file line of `mark` in it. */
    const variant = (prefix: string, change: (l: string) => string | null, mark = prefix): [string, number] => {
      const i = line(prefix);
      expect(i, prefix).toBeGreaterThanOrEqual(0);
      const changed = records.flatMap((l, j) => (j === i ? (change(l)?.split('\n') ?? []) : [l]));
      const content = [header!, ...changed, JSON.stringify({ hubtier: 'end', records: changed.length })].join('\n') + '\n';
      return [content, changed.findIndex((l) => l.startsWith(mark)) + 2];
    };
    const value = (v: string) => (l: string) => l.replace(/"value":.*\}$/, `"value":${v}}`);
    const rule = records[line('{"db":"rules","key":["rule"')]!;
    const ruleId = (JSON.parse(rule) as { key: [string, string, string] }).key[2];
    /** The rule renamed in each of its records (its cron record first). */
    const renamed = (id: string): [string, number] => {
      const content = readFileSync(good, 'utf8').replaceAll(ruleId, id);
      return [content, content.split('\n').findIndex((l) => l.includes(id)) + 1];
    };
    const cases: Array<[string, [string, number], RegExp]> = [
      ['a shadow layout newer than this version reads', variant('{"db":"layouts","key":"shadows"', value(String(SHADOWS_LAYOUT + 1))), /layouts record: shadow records of layout 5; this version reads layouts up to 4/],
      // the node crashed at start on these (a TypeError reading `at` of null)
      ['a push dedup entry of null', variant('{"db":"push","key":["dedup"', value('null')), /push record: a push dedup entry must be \{"id", "at"\}/],
      ['a push counter that is no number', variant('{"db":"push","key":["count"', value('"lots"')), /push record: a push counter must be a whole number, 0 or more/],
      // values no node writes (a review, 2026-12-06): each imported, and then misbehaved quietly
      ['a push counter below 0', variant('{"db":"push","key":["count"', value('-5')), /push record: a push counter must be a whole number, 0 or more/],
      ['a cron cursor far in the future', variant('{"db":"rules","key":["rule"', (l) => `${l}\n{"db":"rules","key":["cursor",${JSON.stringify(ruleId)}],"value":1000000000000000}`, '{"db":"rules","key":["cursor"'), /rules record: a cron cursor must be a time \(ms\) no later than now/],
      ['a revocation that never ends', variant('{"db":"layouts"', (l) => `${l}\n{"db":"revocations","key":"jti-x","value":["jti-x",null,null,1e300,null]}`, '{"db":"revocations"'), /revocations record: a revocation's exp must be a time in seconds, not 1e\+300/],
      ['a hub secret in the sealed form\'s prefix that is not sealed', variant('{"db":"hubs","key":"hub-9"', (l) => l.replace('"s3cret"', '"s1.x"')), /hubs record: hub "hub-9": a secret that is not a sealed value/],
      ['a dead letter whose notification the queue refuses', variant('{"db":"push","key":["failed"', (l) => l.replace('\\"title\\":\\"t\\",', '')), /push record: push notification title: must be a string/],
      ['a device attribute that is an object', variant('{"db":"shadows","key":[0,"lamp"]', (l) => l.replace('[true,40]', '[{"nested":{"deep":1}},40]')), /shadows record: device lamp reported\.on: must be a string, finite number, boolean or nil/],
      ['a device attribute named __proto__', variant('{"db":"shadow-names","key":1', value('["__proto__","level"]'), '{"db":"shadows","key":[0,"lamp"]'), /shadows record: device lamp reported\.__proto__: attribute name/],
      ['a hub without its home index entry', variant('{"db":"hub-homes","key":["toString"', () => null, '{"db":"hubs","key":"hub-1"'), /hubs record: no home index entry \(hub-homes \["toString","hub-1"\]\): its home would not list it/],
      ['a rule id __proto__', renamed('__proto__'), /rules record: rule "__proto__" is not a valid id/],
      ['a rule id that is a path (the rule alone)', variant('{"db":"rules","key":["rule"', (l) => l.replaceAll(ruleId, '..\\/..\\/etc\\/x')), /rules record: rule "\.\.\/\.\.\/etc\/x" is not a valid id/],
      ['a number JSON.parse reads as Infinity', variant('{"db":"hubs","key":"hub-1"', (l) => l.replace(',1700000000000,', ',1e400,')), /a number out of range \(read as Infinity/],
      // passes the check (the Redis import takes it), refused by LMDB inside the transaction
      ['a key over LMDB\'s 1,978 bytes', variant('{"db":"layouts"', (l) => `${l}\n{"db":"revocations","key":"${'j'.repeat(3_000)}","value":["j",null,null,1999999999,null]}`, '{"db":"revocations"'), /revocations record: the store cannot hold it \(Key size is larger than the maximum key size/],
    ];
    const target = store();
    for (const [what, [content, at], message] of cases) {
      const file = join(dir(), 'bad.jsonl');
      writeFileSync(file, content);
      const refused = await importStore(target, file).then(
        () => null,
        (err: unknown) => err,
      );
      expect(refused, what).toBeInstanceOf(BackupError);
      expect((refused as Error).message, what).toMatch(new RegExp(`^${file}:${at}: ${message.source}`));
      expect(dump(target), what).toEqual({});
    }
    expect(await importStore(target, good)).toMatchObject({ push: 5, layouts: 1, 'hub-homes': 2 });
    expect(dump(target)).toEqual(dump(a));
  });

  it(`the check's shadow layout bound is the shadow store's: a store marked ${SHADOWS_LAYOUT} opens, one marked higher is refused`, async () => {
    const log = createLogger('silent');
    const at = store();
    await at.db('layouts').put('shadows', SHADOWS_LAYOUT);
    await new LmdbShadowStore(at, { log }).close();
    const above = store();
    await above.db('layouts').put('shadows', SHADOWS_LAYOUT + 1);
    expect(() => new LmdbShadowStore(above, { log })).toThrow(`holds shadow records of layout ${SHADOWS_LAYOUT + 1}; this version reads layouts up to ${SHADOWS_LAYOUT}`);
  });

  it('import reads the file it checked: one renamed over the path meanwhile is not read, one written in place writes nothing', async () => {
    const a = store();
    await fill(a);
    const d = dir();
    const file = join(d, 'backup.jsonl');
    await exportStore(a, file);
    const content = readFileSync(file, 'utf8');
    // hub ids the check refuses, the same length as the good ones
    const bad = content.replaceAll('"hub-1"', '"hub 1"');
    /** The store, with `act` run when the import opens its sub-databases to write: after the check, before the write. */
    const meanwhile = (target: DataStore, act: () => void): DataStore => ({
      ...target,
      db: ((name: string) => {
        if (name === 'hubs') act();
        return target.db(name);
      }) as DataStore['db'],
    });

    const renamed = store();
    writeFileSync(join(d, 'bad.jsonl'), bad);
    await importStore(meanwhile(renamed, () => renameSync(join(d, 'bad.jsonl'), file)), file);
    expect(dump(renamed)).toEqual(dump(a));

    writeFileSync(file, content);
    const inPlace = store();
    await expect(importStore(meanwhile(inPlace, () => writeFileSync(file, bad)), file)).rejects.toThrow(`${file} changed while it was imported: nothing written`);
    expect(dump(inPlace)).toEqual({});
  });

  it('imports from a pipe (read once, its records held from the check to the write)', async () => {
    const a = store();
    await fill(a);
    const d = dir();
    const file = join(d, 'b.jsonl');
    await exportStore(a, file);
    const pipe = fifo(d, { from: file });
    try {
      const target = store();
      expect(await importStore(target, pipe.path)).toMatchObject({ hubs: 1, rules: 3 });
      expect(dump(target)).toEqual(dump(a));
    } finally {
      pipe.kill();
    }
  });

  it('export writes through a FIFO, or a link to one, in place: neither is replaced; a directory is refused', async () => {
    const a = store();
    await fill(a);
    const d = dir();
    const copy = join(d, 'copy.jsonl');
    const pipe = fifo(d, { copy });
    const link = join(d, 'link');
    symlinkSync(pipe.path, link);
    try {
      const counts = await exportStore(a, link);
      expect(lstatSync(pipe.path).isFIFO()).toBe(true);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      await pipe.exited;
      const lines = readFileSync(copy, 'utf8').trimEnd().split('\n');
      expect(lines[0]).toMatch(/^\{"hubtier":"data"/);
      expect(JSON.parse(lines.at(-1)!)).toEqual({ hubtier: 'end', records: Object.values(counts).reduce((x, y) => x + y, 0), sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
      expect(readdirSync(d).sort()).toEqual(['copy.jsonl', 'fifo', 'link']);
    } finally {
      pipe.kill();
    }
    await expect(exportStore(a, d)).rejects.toThrow(`${d} is a directory`);
  });

  // nine runs of the command line, each a node process loading tsx: a ceiling for a busy machine
  it('an import the disk cannot hold says so, as the node does, and leaves the directory as it found it (review "diskfull": EIO and a stack)', { timeout: 60_000 }, async () => {
    const from = dir();
    const s = openDataStore(from);
    const registry = new LmdbHubRegistry(s);
    for (let i = 0; i < 3_000; i++) await registry.create({ ...HUB_9, hubId: `hub-${i}`, secret: `secret-${i}-${'x'.repeat(100)}` });
    await s.close();
    const file = join(dir(), 'big.jsonl');
    await run(process.execPath, [...scriptArgs('src/data-cli.ts'), 'export', file, '--data-dir', from], { cwd: ROOT });
    const to = join(dir(), 'new');
    // a disk with room for 256 KiB of the store (the file size limit, as a full disk refuses the next page)
    const failed = await run('prlimit', ['--fsize=262144', process.execPath, ...scriptArgs('src/data-cli.ts'), 'import', file, '--data-dir', to], { cwd: ROOT }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toMatch(/^data error: DATA_DIR .*new: cannot write hubtier\.mdb \(.*\)\. Free space on its filesystem \(df .*\) and run npm run data -- import again$/m);
    expect(failed?.stderr).not.toMatch(/fatal|    at /);
    expect(existsSync(to)).toBe(false);
  });

  it('npm run data -- export / import: a round trip through the command line, and its usage', { timeout: 120_000 }, async () => {
    const from = dir();
    const s = openDataStore(from);
    await new LmdbHubRegistry(s).create(HUB_9);
    await s.close();
    const file = join(dir(), 'b.jsonl');
    const cli = (...args: string[]) => run(process.execPath, [...scriptArgs('src/data-cli.ts'), ...args], { cwd: ROOT });
    expect((await cli('export', file, '--data-dir', from)).stdout).toMatch(/^exported 2 records \(hub-homes 1, hubs 1\)/);
    const to = dir();
    expect((await cli('import', file, '--data-dir', to)).stdout).toMatch(/^imported 2 records \(hub-homes 1, hubs 1\)/);
    const t = store(to);
    expect(await new LmdbHubRegistry(t).get('hub-9')).toEqual(HUB_9);
    await expect(cli('import', file, '--data-dir', to)).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/data error: DATA_DIR .* is in use by another node/) });
    await expect(cli('nonsense')).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/^usage: npm run data -- export FILE/) });

    // run by npm from another directory (INIT_CWD): its relative FILE and --data-dir are taken from there, not the package's
    const started = dir();
    const fromNpm = (script: string, ...args: string[]) => run(process.execPath, [...scriptArgs('src/data-cli.ts'), ...args], { cwd: ROOT, env: { ...process.env, INIT_CWD: started, npm_lifecycle_script: script } });
    expect((await fromNpm('node --import tsx src/data-cli.ts', 'export', 'here.jsonl', '--data-dir', relative(started, from))).stdout).toMatch(/^exported 2 records/);
    expect(readdirSync(started)).toEqual(['here.jsonl']);
    // an INIT_CWD inherited from another npm script (the CLI run with node inside it) is not this command line's
    const inherited = `inherited-${process.pid}.jsonl`;
    try {
      expect((await fromNpm('vitest run', 'export', inherited, '--data-dir', from)).stdout).toMatch(/^exported 2 records/);
      expect(existsSync(join(ROOT, inherited))).toBe(true);
      expect(readdirSync(started)).toEqual(['here.jsonl']);
    } finally {
      rmSync(join(ROOT, inherited), { force: true });
    }

    // - is stdout and stdin: one streamed into the other (`export - | import -`), the `exported` line on stderr, out of the stream
    const piped = dir();
    const spawned = (args: string[], stdin: 'ignore' | Readable) => spawn(process.execPath, [...scriptArgs('src/data-cli.ts'), ...args], { cwd: ROOT, stdio: [stdin, 'pipe', 'pipe'] });
    const exporting = spawned(['export', '-', '--data-dir', from], 'ignore');
    const importing = spawned(['import', '-', '--data-dir', piped], exporting.stdout);
    const text = async (r: Readable) => Buffer.concat(await r.toArray()).toString();
    // the export's stdout is the import's stdin: read there, not here
    const ended = async (child: typeof exporting, stdout: Readable | null) => {
      const [out, err, [code]] = await Promise.all([stdout ? text(stdout) : '', text(child.stderr), once(child, 'exit')]);
      return { out, err, code: code as number };
    };
    const [exported, imported] = await Promise.all([ended(exporting, null), ended(importing, importing.stdout)]);
    expect(exported).toEqual({ out: '', err: expect.stringMatching(/^exported 2 records \(hub-homes 1, hubs 1\) from .* to stdout\n$/), code: 0 });
    expect(imported).toEqual({ out: expect.stringMatching(/^imported 2 records \(hub-homes 1, hubs 1\) into .* from stdin\n$/), err: '', code: 0 });
    expect(await new LmdbHubRegistry(store(piped)).get('hub-9')).toEqual(HUB_9);

    // a refused import leaves DATA_DIR as it was: no empty store for a node to start on
    const bad = join(dir(), 'bad.jsonl');
    writeFileSync(bad, readFileSync(file, 'utf8').replace('"hub-9"', '"hub 9"'));
    const fresh = join(dir(), 'data');
    await expect(cli('import', bad, '--data-dir', fresh)).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/^data error: /) });
    expect(existsSync(fresh)).toBe(false);
    const kept = dir();
    writeFileSync(join(kept, 'notes.txt'), 'mine');
    await expect(cli('import', bad, '--data-dir', kept)).rejects.toMatchObject({ code: 1 });
    expect(readdirSync(kept)).toEqual(['notes.txt']);

    // a mistyped DATA_DIR: refused, not made, no backup of nothing written (a cron would go on for months)
    const missing = join(dir(), 'typo');
    const none = join(dir(), 'none.jsonl');
    await expect(cli('export', none, '--data-dir', missing)).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/^data error: .*typo holds no store \(no hubtier\.mdb\): nothing exported/) });
    expect(existsSync(missing)).toBe(false);
    expect(existsSync(none)).toBe(false);
    // an output directory that does not exist: named, no stack
    await expect(cli('export', join(missing, 'b.jsonl'), '--data-dir', from)).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/^data error: .*typo: no such directory to write b\.jsonl in\n$/) });
  });
});
