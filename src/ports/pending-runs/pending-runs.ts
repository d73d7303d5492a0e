import type { PlannedAction } from '../../rules/model.js';

/**
 * The remainder of a rule's run parked in a delay: what it still has to do, and when. Saved when
 * the run reaches the delay, so "light off in 5 minutes" survives a restart of the node; also what
 * a clean stop cut off (from the action it stopped, due at the stop: ActionRun's keep).
 */
export interface PendingRun {
  /** this wait's id (unique per run and delay): a remove naming an older wait deletes nothing */
  runId: string;
  homeId: string;
  ruleId: string;
  /** the rule's version when the run was planned: a rule edited since drops the entry at resume (resume.ts) */
  ruleVersion: number;
  /** when the delay ends (a cut run: the stop), ms since the Unix epoch */
  dueAt: number;
  /** the planned actions after the delay (a cut run: from the one cut), in order, as the worker resolved them (later delays included) */
  actions: PlannedAction[];
  /** the index of `actions[0]` in the run's full plan: a notification keeps its dedup key across a restart */
  offset: number;
  /** the notification dedup key of plan index i is `${dedupBase}:${i}` */
  dedupBase: string;
  /** when it was saved, on the clock of `dueAt` (absent in entries saved before 2026-12-07) */
  savedAt?: number;
  /** stored beside the rule's entry, never replacing it: a run older than the rule's current one (an event replayed after a crash) */
  apart?: true;
}

/**
 * Pending runs of rules: what runs parked in a delay still have to do.
 *
 * - One entry per rule id: `save` replaces the rule's entry (a rule has one current run; a new run
 *   supersedes the one waiting), unless that entry, another run's, was due already when the new one
 *   was saved (`savedAt`; its delay had ended and its run had not finished: its node died, or is late): that one is kept
 *   apart (`overdueKey`, `apart` set) and still resumed, since it ended its delay before the new
 *   run began. A run's entries apart replace each other (one key per run: its `dedupBase`). A
 *   cluster's second run on another node replaced a dead node's overdue run before any node took it
 *   over, and its notification was never sent (review "kill9b").
 * - `save` resolves once the entry is stored as durably as the adapter stores anything (LMDB: the
 *   transaction is committed and, with DATA_SYNC=commit, on disk; Redis: acknowledged); writes take
 *   effect in the order they are made, awaited or not. A read (`holds`, `load`) is sure to see
 *   only the writes that resolved before it was made (LMDB reads the last commit).
 * - `remove(ruleId, runId, dedupBase)` deletes the rule's entry only while it is that wait (or the
 *   run's entry apart, while it is that wait): a late remove of an older run never deletes a newer run's entry.
 * - `holds(ruleId, runId, dedupBase)`: whether the rule's entry is still that wait, or the run's entry apart is. False once a newer run of
 *   the rule saved its own (on any node of a shared store) or the entry is gone: a run ending its
 *   delay asks, since a newer run on another node is one its node's RunGuard never saw.
 * - `load` returns the entries this node is to resume at its start (copies, any order); loading
 *   deletes nothing. A store of one node returns every entry. A store shared by several nodes
 *   returns this node's own and those of nodes that are gone, which become its own: each entry is
 *   given to one node at a time.
 * - `claimOrphans` (shared stores only): entries of nodes gone since, now this node's; never one of
 *   its own. The engine calls it now and then, so a dead node's delays go on elsewhere.
 * - `durable`: whether entries outlive the process (the memory adapter: no).
 * - On error the call rejects and nothing is promised of that entry: a failed save means the wait
 *   lives in memory only, a failed remove that the entry may come back at the next start.
 */
export interface PendingRuns {
  readonly durable: boolean;
  save(run: PendingRun): Promise<void>;
  remove(ruleId: string, runId: string, dedupBase?: string): Promise<void>;
  holds(ruleId: string, runId: string, dedupBase?: string): Promise<boolean>;
  load(): Promise<PendingRun[]>;
  claimOrphans?(): Promise<PendingRun[]>;
  /** the adapter's own resources only (a shared LMDB environment is its owner's to close) */
  close(): Promise<void>;
}

/** Where a run's entry apart from its rule's is kept: one per run (rule ids hold no space). */
export function overdueKey(ruleId: string, dedupBase: string): string {
  return `${ruleId} ${dedupBase}`;
}

/** The key `run` is stored under: its rule's, or beside it (`apart`). */
export function keyOf(run: PendingRun): string {
  return run.apart ? overdueKey(run.ruleId, run.dedupBase) : run.ruleId;
}

/** The key under which the rule's wait `runId` is stored (its rule's, or its run's apart), null if it is not; for stores read synchronously. */
export function heldKey(get: (key: string) => PendingRun | undefined, ruleId: string, runId: string, dedupBase?: string): string | null {
  if (get(ruleId)?.runId === runId) return ruleId;
  const apart = dedupBase === undefined ? undefined : overdueKey(ruleId, dedupBase);
  return apart !== undefined && get(apart)?.runId === runId ? apart : null;
}

/** Whether `old`, the rule's entry, is kept apart when `run` is saved: another run's (another event's), due when `run` was saved. */
export function keptApart(old: PendingRun | undefined, run: PendingRun): old is PendingRun {
  return old !== undefined && old.dedupBase !== run.dedupBase && run.savedAt !== undefined && old.dueAt <= run.savedAt;
}
