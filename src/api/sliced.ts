/**
 * Work over a large document in slices of a few milliseconds, the event loop turning between
 * them: a home's export (25 MB for 200 hubs and their events) built and serialised in one go held
 * every hub and app of the node for up to 380 ms, and a user could ask again as soon as it was done
 * (a hostile review, 2026-12-06). A `Meter` adds up the loop time the slices took (not the turns
 * between them): what an export cost the node, whatever else ran meanwhile.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

/** @default 8 (ms): the longest a slice runs before the loop gets a turn */
const SLICE_MS = 8;
/** items between two looks at the clock */
const CHECK_EVERY = 32;

/** loop time spent in slices, ms */
export interface Meter {
  ms: number;
}

/** `items.map(fn)`, yielding to the loop every `sliceMs`. */
export async function mapInSlices<T, U>(items: readonly T[], fn: (item: T) => U, sliceMs = SLICE_MS, meter?: Meter): Promise<U[]> {
  const out = new Array<U>(items.length);
  let from = performance.now();
  for (let i = 0; i < items.length; i++) {
    out[i] = fn(items[i]!);
    if (i % CHECK_EVERY === CHECK_EVERY - 1 && performance.now() - from >= sliceMs) {
      if (meter) meter.ms += performance.now() - from;
      await nextTurn();
      from = performance.now();
    }
  }
  if (meter) meter.ms += performance.now() - from;
  return out;
}

/**
 * `JSON.stringify(doc)` of a plain object whose large parts are arrays at its top: each field, and
 * each element of an array field, is stringified alone, the loop turning every `sliceMs`. The same
 * text as `JSON.stringify` (fields in order, `undefined` ones left out, as are array holes as null).
 */
export async function stringifyInSlices(doc: object, sliceMs = SLICE_MS, meter?: Meter): Promise<string> {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(doc)) {
    if (value === undefined || typeof value === 'function') continue;
    const head = `${JSON.stringify(key)}:`;
    if (!Array.isArray(value)) {
      const from = performance.now();
      parts.push(head + JSON.stringify(value));
      if (meter) meter.ms += performance.now() - from;
      continue;
    }
    const elements = await mapInSlices(value, (v: unknown) => JSON.stringify(v) ?? 'null', sliceMs, meter);
    const from = performance.now();
    parts.push(`${head}[${elements.join(',')}]`);
    if (meter) meter.ms += performance.now() - from;
  }
  return `{${parts.join(',')}}`;
}
