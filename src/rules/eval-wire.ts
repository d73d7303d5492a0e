/**
 * What crosses to a rule worker: tasks in batches (one message per event-loop turn instead of one
 * per event), each rule as msgpack bytes packed once per rule object on the main thread and
 * unpacked by a worker only when it has not compiled that rule version yet. Copying bytes costs
 * the main thread less than structured cloning the rule's object graph for every event.
 */
import { Packr } from 'msgpackr';
import type { EvalResult, EvalTask, Rule } from './model.js';

/** A candidate rule of a task: its identity, and its body for a worker that lacks that version. */
export interface WireRule {
  id: string;
  version: number;
  bytes: Uint8Array;
}

export type WireTask = Omit<EvalTask, 'rules'> & { rules: WireRule[] };

export interface EvalBatch {
  tasks: WireTask[];
  /**
   * Shared with the pool (a SharedArrayBuffer): the worker stores 1 in `[1]` when it takes the batch
   * (the deadline counts from there), the index of the task it starts in `[0]`, and the count once
   * all are done, so that at a deadline the pool knows which task overran.
   */
  progress?: Int32Array;
}

/** Per task of the batch, in order: its result, or why the worker could not evaluate it. */
export type BatchResult = Array<EvalResult | { error: string }>;

// the rule's values only (validated specs: plain maps, strings, numbers); absent fields left out
const packr = new Packr({ ...({ skipValues: [undefined] } as object), useRecords: false, mapsAsObjects: true, moreTypes: false });
const packed = new WeakMap<Rule, WireRule>();

/** The rule as a task carries it; packed at the first task that names this rule object. */
export function wireRule(rule: Rule): WireRule {
  let wire = packed.get(rule);
  if (!wire) {
    // a copy of its own: msgpackr's result is a view into a shared buffer, which a clone would copy whole
    wire = { id: rule.id, version: rule.version, bytes: packr.pack(rule).slice() };
    packed.set(rule, wire);
  }
  return wire;
}

export function wireTask(task: EvalTask): WireTask {
  return { ...task, rules: task.rules.map(wireRule) };
}

export function unpackRule(bytes: Uint8Array): Rule {
  return packr.unpack(bytes) as Rule;
}
