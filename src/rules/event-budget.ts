/**
 * The budget of one event on a rule worker: the rules it triggers in a home share EVENT_MAX_COST
 * steps (expr-cost.ts), charged by evaluate.ts before each condition and template runs and before
 * a rule is compiled; past it the rest of the event's rules are not evaluated (`event_budget`).
 */
import { EVENT_MAX_COST } from './expr-cost.js';
import type { Rule } from './model.js';

/** What is left of one event's budget; `spent` once a charge did not fit. */
export interface Budget {
  left: number;
  spent: boolean;
}

/** Why a rule dropped by the budget was not evaluated (its `lastError`). */
export const EVENT_BUDGET_MESSAGE = `not evaluated: the rules this event triggered in the home would cost more than the ${EVENT_MAX_COST.toLocaleString('en-US')} steps one event may use (cheapest rules go first)`;

/**
 * Steps charged per character of a rule's expressions for compiling them (parsing and the cost
 * estimate: about 0.1 ms for 600 characters on a warm worker here, 1 ms on a cold one).
 */
const COMPILE_STEPS_PER_CHAR = 10;

/**
 * Charges compiling `rule`; the first rule of an event always fits (its charge empties the budget
 * at most), so that a rule costlier to compile than the budget is still compiled, once.
 */
export function chargeCompile(budget: Budget, rule: Rule): boolean {
  let chars = 0;
  for (const c of rule.conditions) chars += c.length;
  for (const a of rule.actions) if (a.type === 'notify') chars += a.title.length + a.body.length;
  const cost = chars * COMPILE_STEPS_PER_CHAR;
  if (budget.spent || budget.left < EVENT_MAX_COST) return charge(budget, cost);
  budget.left = Math.max(0, budget.left - cost);
  return true;
}

/** Takes `cost` from the event's budget; false (and the budget spent) when it does not fit. */
export function charge(budget: Budget, cost: number): boolean {
  if (budget.spent || cost > budget.left) return !(budget.spent = true);
  budget.left -= cost;
  return true;
}
