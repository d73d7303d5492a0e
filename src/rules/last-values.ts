import type { AttrValue } from '../../proto/frames.js';

/**
 * Entries kept at most per home: a hub may report ever new device ids to a trigger on any device,
 * and a home's actor lives as long as the node. A home of this node's size watches far fewer.
 */
const MAX_LAST_VALUES = 4_096;

/**
 * The last value seen of each attribute a state trigger watches, keyed `hub/device/attr`, for
 * "changes", from/to and thresholds. Past `max` entries the least recently reported goes: its
 * next report is then taken as a first one (no value before it).
 */
export class LastValues {
  private readonly values = new Map<string, AttrValue>();

  constructor(private readonly max = MAX_LAST_VALUES) {}

  /** Records `value` for `key` and answers the value before it (undefined: none known). */
  swap(key: string, value: AttrValue): AttrValue | undefined {
    const before = this.values.get(key);
    // a key written again moves to the end: the first in the map is the least recently reported
    if (before !== undefined) this.values.delete(key);
    else if (this.values.size >= this.max) this.values.delete(this.values.keys().next().value!);
    this.values.set(key, value);
    return before;
  }

  get size(): number {
    return this.values.size;
  }
}
