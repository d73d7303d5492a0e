/**
 * A hub's devices by id, as a session keeps them. A node holds one table per hub, and a Map's
 * hash table costs about 300 bytes for 8 devices; up to FLAT_DEVICES devices the table is a flat
 * array of ids and values (`[id, value, id, value, …]`, about 150 bytes for 8), searched in order:
 * property keys are internalized strings, so each step compares two pointers. Larger hubs get a Map.
 */
export type DeviceTable<V> = Array<string | V> | Map<string, V>;
export type ReadonlyDeviceTable<V> = ReadonlyArray<string | V> | ReadonlyMap<string, V>;

/** Devices a flat table holds before it becomes a Map. */
export const FLAT_DEVICES = 32;

export function tableGet<V>(table: ReadonlyDeviceTable<V>, id: string): V | undefined {
  if (!Array.isArray(table)) return (table as ReadonlyMap<string, V>).get(id);
  for (let i = 0; i < table.length; i += 2) if (table[i] === id) return table[i + 1] as V;
  return undefined;
}

/** Sets `id` to `value`; answers the table to keep (a Map once the flat one would pass FLAT_DEVICES). */
export function tableSet<V>(table: DeviceTable<V>, id: string, value: V): DeviceTable<V> {
  if (!Array.isArray(table)) {
    table.set(id, value);
    return table;
  }
  for (let i = 0; i < table.length; i += 2) {
    if (table[i] === id) {
      table[i + 1] = value;
      return table;
    }
  }
  if (table.length < 2 * FLAT_DEVICES) {
    table.push(id, value);
    return table;
  }
  const map = new Map<string, V>();
  tableForEach(table, (v, k) => map.set(k, v));
  return map.set(id, value);
}

/** Removes `id`; the last device takes its place (a table's order is not kept). */
export function tableDelete<V>(table: DeviceTable<V>, id: string): void {
  if (!Array.isArray(table)) {
    table.delete(id);
    return;
  }
  for (let i = 0; i < table.length; i += 2) {
    if (table[i] !== id) continue;
    const last = table.length - 2;
    table[i] = table[last]!;
    table[i + 1] = table[last + 1]!;
    table.length = last;
    return;
  }
}

export function tableSize<V>(table: ReadonlyDeviceTable<V>): number {
  return Array.isArray(table) ? table.length / 2 : (table as ReadonlyMap<string, V>).size;
}

export function tableForEach<V>(table: ReadonlyDeviceTable<V>, fn: (value: V, id: string) => void): void {
  if (!Array.isArray(table)) {
    (table as ReadonlyMap<string, V>).forEach(fn);
    return;
  }
  for (let i = 0; i < table.length; i += 2) fn(table[i + 1] as V, table[i] as string);
}

/** The ids of the table's devices, copied: the table may change while they are used. */
export function tableIds<V>(table: ReadonlyDeviceTable<V>): string[] {
  const ids: string[] = [];
  tableForEach(table, (_, id) => ids.push(id));
  return ids;
}
