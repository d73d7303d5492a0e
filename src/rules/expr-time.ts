/**
 * The time part of conditions: `between(hhmm, from, to)` and the declared types of `time.*`.
 *
 * `between` reads its three arguments as clock times "H:MM" or "HH:MM" (00:00–23:59; "6:00" is
 * 06:00) and compares minutes of the day, not text: true when from ≤ t < to, and when from > to
 * the window wraps past midnight (22:00–06:00 holds 23:10 and 05:59). Equal bounds hold nothing.
 * A literal that is not such a time is refused at save; one computed at run time fails the
 * condition with that message.
 */
import type { ASTNode } from '@marcbachmann/cel-js';

const CLOCK = /^(\d{1,2}):(\d{2})$/;

/** Minutes since midnight of "H:MM" / "HH:MM", or null when it is not a time of day. */
export function clockMinutes(s: string): number | null {
  const m = CLOCK.exec(s);
  if (!m) return null;
  const h = Number(m[1]);
  const min = Number(m[2]);
  return h <= 23 && min <= 59 ? h * 60 + min : null;
}

function minutesOf(s: string): number {
  const n = clockMinutes(s);
  if (n === null) throw new Error(`between: ${JSON.stringify(s)} is not a time of day (HH:MM, 00:00–23:59)`);
  return n;
}

/** The run-time `between`: minutes compared, wrapping past midnight when from > to. */
export function between(t: string, from: string, to: string): boolean {
  const [x, a, b] = [minutesOf(t), minutesOf(from), minutesOf(to)];
  return a <= b ? x >= a && x < b : x >= a || x < b;
}

/** The problem with the literal arguments of any `between` call in `node`, or null (computed ones are checked at run time). */
export function betweenProblem(node: ASTNode): string | null {
  if (node.op === 'call' && node.args[0] === 'between') {
    for (const a of node.args[1]) {
      if (a.op === 'value' && typeof a.args === 'string' && clockMinutes(a.args) === null) {
        return `between(): ${JSON.stringify(a.args)} is not a time of day: write "HH:MM", 00:00–23:59 ("6:00" reads as 06:00)`;
      }
    }
  }
  return childProblem(node.args);
}

/** Walks whatever holds child nodes (an args array, a pair of a map entry) without knowing each op. */
function childProblem(x: unknown): string | null {
  if (Array.isArray(x)) {
    for (const item of x) {
      const problem = childProblem(item);
      if (problem) return problem;
    }
    return null;
  }
  return typeof x === 'object' && x !== null && 'op' in x ? betweenProblem(x as ASTNode) : null;
}

/**
 * `time.*` as the save-time type check declares it (evaluate.ts `localTime` builds it), with its
 * numbers declared `num`. They are doubles at run time, like device numbers, where CEL compares a
 * double with an int literal by value (`time.hour == 22`, `time.hour >= 22`) but has no `==` or
 * arithmetic across the two types in a type check: an expression passes when it checks with the
 * numbers declared int or declared double, so `time.hour == 22` and `time.hour == 22.0` pass while
 * `time.hhmm > 22`, `time.weekday == "Mon"` or a misspelled field are refused.
 */
export function timeSchema(num: 'int' | 'double'): Record<string, string> {
  return {
    hour: num,
    minute: num,
    second: num,
    hhmm: 'string',
    weekday: num,
    weekend: 'bool',
    day: num,
    month: num,
    year: num,
    date: 'string',
    zone: 'string',
    epochMs: num,
  };
}
