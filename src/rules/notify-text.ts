/**
 * A rule's notification text as the push queue takes it (PUSH_LIMITS: title 1..200, body 1..2,000
 * UTF-16 code units). Validation bounds a template, not what it renders to: `{{ }}` over a hub's
 * 1,024-character attribute or a `map` renders far longer, and `{{ "" }}` renders nothing. The
 * queue refuses such text, so a rule would be saved and then never notify; it is fitted instead.
 */
import { PUSH_LIMITS } from '../ports/push-queue/push-queue.js';
import { cutText, toWellFormed } from '../protocol/well-formed.js';

/**
 * The title and body a rule's notify action sends: an empty (or blank) rendering is replaced by
 * the rule's name, which says which automation speaks; then both are cut to the push limits.
 * Applying it twice changes nothing.
 */
export function notificationText(title: string, body: string, ruleName: string): { title: string; body: string } {
  return { title: fitted(orName(title, ruleName), PUSH_LIMITS.title), body: fitted(orName(body, ruleName), PUSH_LIMITS.body) };
}

/**
 * Cut, and whole: CEL's `substring` counts UTF-16 units, so `{{ label.substring(0, 1) }}` of an
 * emoji renders half of it, which one store kept as `\ud83d` (refused by strict JSON parsers) and
 * another as U+FFFD (review "unicode"): U+FFFD everywhere.
 */
function fitted(text: string, max: number): string {
  return cutText(toWellFormed(text), max);
}

function orName(text: string, ruleName: string): string {
  return text.trim() === '' ? ruleName : text;
}
