/**
 * Integers in JSON text that JSON.parse changes: beyond ±(2^53 − 1) it rounds them
 * (5149013111111111111 reads as …0656), where the hub wire and the msgpack app socket refuse such
 * integers (PROTOCOL.md §1: "never rounded"). An app that sent a 64-bit id as a JSON number was
 * answered ok and a different number reached the device (review "msgpack"). A number written
 * without a fraction or an exponent is an integer its sender meant exactly; one whose text a
 * number gives back as written (`9007199254740992`, `1152921504606847000`, what the node itself
 * writes for a hub's float64 2^60) is taken (review "diff14"); `1e20` or `1.5e300` are floats,
 * rounded as floats are.
 */

/** no integer of 15 digits or fewer is beyond 2^53 − 1 (16 digits): text without a run of 16 is not walked */
const LONG_RUN = /\d{16}/;

/** The first integer literal of `text` (outside strings) that JSON.parse would round, or null. */
export function roundedInteger(text: string): string | null {
  if (!LONG_RUN.test(text)) return null;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash: the next character is escaped
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) {
      inString = true;
      continue;
    }
    if (c !== 0x2d && (c < 0x30 || c > 0x39)) continue;
    let end = i + 1;
    let integer = true;
    for (; end < text.length; end++) {
      const d = text.charCodeAt(end);
      if (d >= 0x30 && d <= 0x39) continue;
      if (d === 0x2e || d === 0x65 || d === 0x45 || d === 0x2b || d === 0x2d) integer = false;
      else break;
    }
    const literal = text.slice(i, end);
    if (integer && literal.length > 15 && String(Number(literal)) !== literal) return literal;
    i = end - 1;
  }
  return null;
}

/**
 * Where in `value` (the parsed document) the rounded `literal` landed: the path of the first number
 * equal to it in the document's order (`set.ids[1]`), `root` for the document itself.
 */
export function pathOfRounded(value: unknown, literal: string, root: string): string {
  const rounded = Number(literal);
  const stack: Array<[unknown, string]> = [[value, '']];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (v === rounded) return path || root;
    if (v === null || typeof v !== 'object') continue;
    // pushed last first, so the first child is looked at first
    const children = Array.isArray(v) ? v.map((inner, i): [unknown, string] => [inner, `${path}[${i}]`]) : Object.entries(v).map(([key, inner]): [unknown, string] => [inner, path === '' ? key : `${path}.${key}`]);
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
  return root;
}

/** The refusal's words: the path, the integer as sent, and what to do. */
export function roundedMessage(field: string, literal: string): string {
  return `${field}: the integer ${literal.length > 40 ? `${literal.slice(0, 40)}…` : literal} is beyond ±(2^53 − 1) and would be rounded (PROTOCOL.md §1): send it as a string`;
}
