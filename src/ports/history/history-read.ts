import { statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { HistoryRead, Position } from './history.js';

/** A fresh epoch: 12 random hex characters (48 bits), unlikely to repeat across resets. */
export function newEpoch(): string {
  return randomBytes(6).toString('hex');
}

/** What a read must return, decided from positions alone; `count` entries follow `since` when ok. */
export type ReadPlan = { ok: true; count: number } | Extract<HistoryRead, { ok: false }>;

/**
 * The rules every adapter applies before looking at entries: another epoch, or an offset past the
 * newest (a position this history never gave), is `epoch_changed`; more than `limit` is `too_old`.
 */
export function checkRead(current: Position, since: Position, upTo: number, limit: number): ReadPlan {
  if (since.epoch !== current.epoch || since.offset > current.offset) return { ok: false, reason: 'epoch_changed', pos: current };
  const count = Math.max(0, Math.min(upTo, current.offset) - since.offset);
  if (count > limit) return { ok: false, reason: 'too_old', pos: current };
  return { ok: true, count };
}

/** Epochs a history file remembers it continued from (`lineage`): apps away through more unclean stops reload. */
const LINEAGE_KEPT = 8;

/**
 * The history file's epoch, a new one when `fresh` (an unclean stop, dropped entries) or when the
 * file is not the one last opened: a copy put back (cp -a, rsync, a file-level restore) is another
 * inode, and the offsets of its epoch were handed out again since it was copied, so apps holding
 * them must reload (review "upgrade": they were told recovered). A block-level snapshot keeps the
 * inode (README). `meta` holds `epoch`, `file` (device and inode) and `lineage`.
 *
 * `lineage`: the epochs this one continues, oldest first, itself last. A new epoch after an unclean
 * stop alone (`carried`: nothing dropped, the same file) continues the one before: the events that
 * stop kept are the ones every app of that epoch was given, up to the offset it lost its tail at
 * (LmdbEventHistory.carried). Any other new epoch starts a lineage of its own.
 */
export async function openEpoch(meta: { get(key: string): unknown; put(key: string, value: unknown): Promise<boolean> }, file: string, fresh: boolean, carried = false): Promise<{ epoch: string; lineage: string[] }> {
  const stat = statSync(file);
  const here = `${stat.dev}:${stat.ino}`;
  const copied = meta.get('file') !== undefined && meta.get('file') !== here;
  const kept = meta.get('epoch');
  const before = typeof kept === 'string' ? kept : undefined;
  let epoch = before;
  if (epoch === undefined || fresh || copied) {
    epoch = newEpoch();
    await meta.put('epoch', epoch);
  }
  if (meta.get('file') !== here) await meta.put('file', here);
  const stored = meta.get('lineage');
  const prior = Array.isArray(stored) && stored.every((e) => typeof e === 'string') && stored[stored.length - 1] === before ? (stored as string[]) : before === undefined ? [] : [before];
  const lineage = epoch === before ? (prior.length > 0 ? prior : [epoch]) : carried && !copied && before !== undefined ? [...prior, epoch].slice(-LINEAGE_KEPT) : [epoch];
  if (!Array.isArray(stored) || stored.join(' ') !== lineage.join(' ')) await meta.put('lineage', lineage);
  return { epoch, lineage };
}
