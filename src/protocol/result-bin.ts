/**
 * A hub's result value with every msgpack `bin` in it as its base64 text (standard alphabet). A
 * result is "any value" (PROTOCOL.md §5), so bin passed through: JSON apps and the HTTP API got
 * Node's `{"type":"Buffer","data":[…]}` and msgpack apps bytes, a shape nobody defined (review
 * "compat"). Keys are copied as own properties (`Object.fromEntries`): a `__proto__` key stays a
 * key, for the checks after this to refuse.
 */
export function binAsBase64(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  if (Array.isArray(v)) return v.map(binAsBase64);
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(Object.keys(v).map((k) => [k, binAsBase64((v as Record<string, unknown>)[k])]));
}

/** The path of the first bin in `v` longer than `max` bytes, or null (the depth was bounded by the scanner). */
export function longBin(v: unknown, field: string, max: number): string | null {
  if (v instanceof Uint8Array) return v.length > max ? field : null;
  if (typeof v !== 'object' || v === null) return null;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const at = longBin(v[i], `${field}[${i}]`, max);
      if (at !== null) return at;
    }
    return null;
  }
  for (const key of Object.keys(v)) {
    const at = longBin((v as Record<string, unknown>)[key], `${field}.${key}`, max);
    if (at !== null) return at;
  }
  return null;
}
