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

/**
 * The history file's epoch, a new one when `fresh` (an unclean stop, dropped entries) or when the
 * file is not the one last opened: a copy put back (cp -a, rsync, a file-level restore) is another
 * inode, and the offsets of its epoch were handed out again since it was copied, so apps holding
 * them must reload (review "upgrade": they were told recovered). A block-level snapshot keeps the
 * inode (README). `meta` holds `epoch` and `file` (device and inode).
 */
export async function openEpoch(meta: { get(key: string): string | undefined; put(key: string, value: string): Promise<boolean> }, file: string, fresh: boolean): Promise<string> {
  const stat = statSync(file);
  const here = `${stat.dev}:${stat.ino}`;
  const copied = meta.get('file') !== undefined && meta.get('file') !== here;
  let epoch = meta.get('epoch');
  if (epoch === undefined || fresh || copied) {
    epoch = newEpoch();
    await meta.put('epoch', epoch);
  }
  if (meta.get('file') !== here) await meta.put('file', here);
  return epoch;
}
