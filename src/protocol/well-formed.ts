/**
 * Text that is well-formed Unicode: JavaScript strings may hold lone surrogates (from a JSON `\u`
 * escape, or a cut through an emoji), which UTF-8 cannot carry. Encoders then write U+FFFD, or
 * strict parsers refuse the whole document, so where text enters or is cut it is kept whole.
 */

/** String.prototype.isWellFormed (Node 20; not in TypeScript's ES2022 library). */
export function wellFormed(s: string): boolean {
  return (s as string & { isWellFormed(): boolean }).isWellFormed();
}

/** String.prototype.toWellFormed: each lone surrogate replaced by U+FFFD, as a UTF-8 encoder would. */
export function toWellFormed(s: string): string {
  return (s as string & { toWellFormed(): string }).toWellFormed();
}

/**
 * Where `value` (a decoded JSON document) holds the first key or string that is not well-formed:
 * its dotted path (`set.label`, `body` for the document itself) and whether a key is at fault; null
 * when there is none. Iterative: a document may nest as deep as JSON.parse allows.
 */
export function firstLoneSurrogate(value: unknown, root = 'body'): { field: string; key: boolean } | null {
  const stack: Array<[unknown, string]> = [[value, '']];
  const at = (path: string, key: string) => (path === '' ? key : `${path}.${key}`);
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (typeof v === 'string') {
      if (!wellFormed(v)) return { field: path || root, key: false };
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) stack.push([v[i], at(path, String(i))]);
    } else if (v !== null && typeof v === 'object') {
      for (const [key, inner] of Object.entries(v)) {
        if (!wellFormed(key)) return { field: path || root, key: true };
        stack.push([inner, at(path, key)]);
      }
    }
  }
  return null;
}

/** `s` cut to at most `max` UTF-16 units, never between the halves of a surrogate pair. */
export function cutWhole(s: string, max: number): string {
  if (s.length <= max) return s;
  const last = s.charCodeAt(max - 1);
  // a high surrogate whose low half would be cut off goes with it
  return s.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}

/** Ends a cut text (one code unit, so a cut text is exactly at its limit). */
export const CUT_MARK = '…';

/** `text` in at most `max` UTF-16 units: longer, it is cut (never through a surrogate pair) and ends with `…`. */
export function cutText(text: string, max: number): string {
  return text.length <= max ? text : cutWhole(text, max - CUT_MARK.length) + CUT_MARK;
}
