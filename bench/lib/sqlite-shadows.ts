/**
 * The alternative to LMDB, for bench/store.bench.ts only: shadows in SQLite (better-sqlite3, WAL)
 * written as the LMDB store writes them: each turn's reports and cursors in one transaction, a
 * device read and rewritten whole (msgpack), listeners told after the commit. better-sqlite3 is
 * not a dependency: it is loaded from `modules` (a node_modules folder outside the project).
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pack, unpack } from 'msgpackr';
import { emptyDevice, type ShadowStore } from '../../src/internal.js';

export type BenchStore = Pick<ShadowStore, 'writeReported' | 'writeCursor' | 'load' | 'flush' | 'close'>;

interface Statement {
  run(...args: unknown[]): unknown;
  get(...args: unknown[]): unknown;
  all(...args: unknown[]): unknown[];
}
interface Db {
  pragma(s: string): unknown;
  exec(s: string): unknown;
  prepare(s: string): Statement;
  transaction(fn: () => void): () => void;
  close(): void;
}

/** `synchronous`: FULL fsyncs every commit (DATA_SYNC=commit), NORMAL leaves the WAL to the OS (DATA_SYNC=os). */
export function sqliteShadows(modules: string, file: string, synchronous: 'FULL' | 'NORMAL'): BenchStore {
  const Database = createRequire(join(modules, 'noop.js'))('better-sqlite3') as new (file: string) => Db;
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.exec('CREATE TABLE IF NOT EXISTS devices (hub TEXT, device TEXT, value BLOB, PRIMARY KEY (hub, device)) WITHOUT ROWID');
  db.exec('CREATE TABLE IF NOT EXISTS hubs (hub TEXT PRIMARY KEY, boot TEXT, seq INTEGER) WITHOUT ROWID');
  const getDevice = db.prepare('SELECT value FROM devices WHERE hub = ? AND device = ?');
  const putDevice = db.prepare('INSERT OR REPLACE INTO devices (hub, device, value) VALUES (?, ?, ?)');
  const putHub = db.prepare('INSERT OR REPLACE INTO hubs (hub, boot, seq) VALUES (?, ?, ?)');
  const loadHub = db.prepare('SELECT device, value FROM devices WHERE hub = ?');
  type Queued = { devices: Map<string, Parameters<ShadowStore['writeReported']>[2]>; cursor?: [string, number, { cursorStored(h: string, s: number): void } | undefined] };
  let queued = new Map<string, Queued>();
  let scheduled: Promise<void> | null = null;

  const commit = db.transaction(() => {
    for (const [hub, q] of queued) {
      for (const [id, d] of q.devices) {
        const row = getDevice.get(hub, id) as { value: Buffer } | undefined;
        const stored = row ? (unpack(row.value) as ReturnType<typeof emptyDevice>) : emptyDevice();
        putDevice.run(hub, id, pack({ ...stored, reported: { ...d.reported }, reportedVersion: d.reportedVersion, reportedAt: d.reportedAt }));
      }
      if (q.cursor) putHub.run(hub, q.cursor[0], q.cursor[1]);
    }
  });
  function schedule(): void {
    scheduled ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        const batch = queued;
        commit();
        queued = new Map();
        scheduled = null;
        for (const [hub, q] of batch) q.cursor?.[2]?.cursorStored(hub, q.cursor[1]);
        resolve();
      }),
    );
  }
  const of = (hub: string): Queued => {
    let q = queued.get(hub);
    if (!q) queued.set(hub, (q = { devices: new Map() }));
    schedule();
    return q;
  };
  return {
    writeReported: (hub, id, d) => void of(hub).devices.set(id, { ...d, reported: { ...d.reported } }),
    writeCursor: (hub, c, _e, stored) => void (of(hub).cursor = [c.boot, c.seq, stored]),
    async load(hub) {
      await scheduled;
      const out = Object.create(null) as Awaited<ReturnType<ShadowStore['load']>>;
      for (const row of loadHub.all(hub) as Array<{ device: string; value: Buffer }>) out[row.device] = unpack(row.value) as ReturnType<typeof emptyDevice>;
      return out;
    },
    flush: async () => {
      await scheduled;
    },
    async close() {
      await scheduled;
      db.close();
    },
  };
}
