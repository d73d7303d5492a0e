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
