/**
 * A rule's notification text as the push queue takes it (PUSH_LIMITS: title 1..200, body 1..2,000
 * UTF-16 code units). Validation bounds a template, not what it renders to: `{{ }}` over a hub's
 * 1,024-character attribute or a `map` renders far longer, and `{{ "" }}` renders nothing. The
 * queue refuses such text, so a rule would be saved and then never notify; it is fitted instead.
 */
import { PUSH_LIMITS } from '../ports/push-queue/push-queue.js';

/** Ends a cut text (one code unit, so a cut text is exactly at its limit). */
export const CUT_MARK = '…';

/**
 * `text` in at most `max` code units: longer, it is cut and ends with `…`. The cut falls between
 * code points: half a surrogate pair (an emoji) is no character, and JSON encoders and the phones'
 * push services mangle or refuse it.
 */
export function cutText(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - CUT_MARK.length;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--; // a high surrogate whose low half would be cut off
  return text.slice(0, end) + CUT_MARK;
}

/**
 * The title and body a rule's notify action sends: an empty (or blank) rendering is replaced by
 * the rule's name, which says which automation speaks; then both are cut to the push limits.
 * Applying it twice changes nothing.
 */
export function notificationText(title: string, body: string, ruleName: string): { title: string; body: string } {
  return { title: cutText(orName(title, ruleName), PUSH_LIMITS.title), body: cutText(orName(body, ruleName), PUSH_LIMITS.body) };
}

function orName(text: string, ruleName: string): string {
  return text.trim() === '' ? ruleName : text;
}
