import { readFileSync } from 'node:fs';
import { table } from '../../load/lib/histogram.js';

/**
 * Reads V8 heap snapshots and tells what a number of sessions added: objects by constructor
 * (or by internal type for arrays, strings, closures' contexts...), count and self size, after
 * minus before, per session.
 */

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export type HeapCensus = Map<string, { count: number; bytes: number }>;

export function census(file: string): HeapCensus {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = fields.length;
  const fType = fields.indexOf('type');
  const fName = fields.indexOf('name');
  const fSize = fields.indexOf('self_size');
  const out: HeapCensus = new Map();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + fType]!] ?? '?';
    const name = s.strings[s.nodes[i + fName]!] ?? '?';
    const key = type === 'object' || type === 'closure' ? (type === 'closure' ? `closure ${name || '(anonymous)'}` : name) : `(${type})`;
    const e = out.get(key);
    const size = s.nodes[i + fSize]!;
    if (e) {
      e.count++;
      e.bytes += size;
    } else out.set(key, { count: 1, bytes: size });
  }
  return out;
}

/** The largest growths from `before` to `after`, per unit (session), as a text table. */
export function censusDiff(before: HeapCensus, after: HeapCensus, units: number, top = 20): { text: string; rows: Array<{ what: string; perUnit: number; bytesPerUnit: number }> } {
  const rows: Array<{ what: string; perUnit: number; bytesPerUnit: number }> = [];
  for (const [k, a] of after) {
    const b = before.get(k) ?? { count: 0, bytes: 0 };
    const bytes = a.bytes - b.bytes;
    if (bytes <= 0) continue;
    rows.push({ what: k, perUnit: Math.round(((a.count - b.count) / units) * 100) / 100, bytesPerUnit: Math.round(bytes / units) });
  }
  rows.sort((x, y) => y.bytesPerUnit - x.bytesPerUnit);
  const total = rows.reduce((n, r) => n + r.bytesPerUnit, 0);
  const text = table([['heap objects added (by constructor / type)', 'count per session', 'bytes per session'], ...rows.slice(0, top).map((r) => [r.what, r.perUnit, r.bytesPerUnit]), ['total of all growing kinds', '', total]]);
  return { text, rows: rows.slice(0, top) };
}
