/**
 * Condition expressions: CEL (Common Expression Language) through @marcbachmann/cel-js, a
 * tree-walking interpreter with no `eval`/`new Function`, no loops or recursion in the language,
 * and parse-time limits on size and depth. Used to check expressions at the API (parse, type check
 * and the cost bound, each linear in the expression: never evaluated there) and to compile and run
 * them on the rule workers (never on the main thread).
 *
 * Variables: `dev.<alias>.<attr>` (reported state of the rule's devices), `time.*` (the home's
 * local time), `event.*` (what fired the rule). One extra function: `between(hhmm, from, to)`,
 * true when from ≤ hhmm < to, wrapping past midnight when from > to (expr-time.ts).
 */
import { Environment, type ASTNode, type ParseResult } from '@marcbachmann/cel-js';
import { costProblem, expressionCost } from './expr-cost.js';
import { between, betweenProblem, timeSchema } from './expr-time.js';

export const EXPR_MAX_LENGTH = 1_000;

/** Functions refused at validation: `matches` runs a user-written RegExp (catastrophic backtracking). */
const BANNED_FUNCTIONS = new Set(['matches']);

const VARIABLES = ['dev', 'time', 'event'] as const;

type Flavour = 'run' | 'int' | 'double';
const envs = new Map<Flavour, Environment>();

/**
 * The workers' environment (`run`: `time` a plain map), or a save-time checker's, where `time` has
 * declared field types with its numbers int or double (expr-time.ts): an object schema would
 * convert `time` into a new Map at every evaluation, so only the check pays for it.
 */
function environment(flavour: Flavour = 'run'): Environment {
  const known = envs.get(flavour);
  if (known) return known;
  const e = new Environment({
    unlistedVariablesAreDyn: false,
    homogeneousAggregateLiterals: false,
    enableOptionalTypes: true,
    limits: { maxAstNodes: 300, maxDepth: 32, maxListElements: 100, maxMapEntries: 100, maxCallArguments: 8 },
  });
  for (const v of VARIABLES) {
    if (flavour !== 'run' && v === 'time') e.registerVariable({ name: v, schema: timeSchema(flavour) });
    else e.registerVariable(v, 'map');
  }
  e.registerFunction('between(string, string, string): bool', between);
  envs.set(flavour, e);
  return e;
}

/** A compiled expression: call it with the evaluation context. */
export type Compiled = ParseResult;

/** Parses (never evaluates) an expression; throws the library's ParseError. */
export function compile(src: string): Compiled {
  return environment().parse(src);
}

/**
 * Checks an expression without running it: syntax, types (with `time.*` typed), limits, banned
 * functions, `between` literals, that every `dev.<alias>` names a declared alias, and its
 * worst-case cost (expr-cost.ts). A `condition` must give a bool (or `dyn`, as `dev.*` values are:
 * known at run time only). `loose` (a backup's rules, stored under older checks) leaves out the
 * typed `time`, the bool result and the `between` literals. Returns the problem as text, or null.
 */
export function checkExpression(src: string, aliases: ReadonlySet<string>, how: { condition?: boolean; loose?: boolean } = {}): string | null {
  if (src.length === 0) return 'must not be empty';
  if (src.length > EXPR_MAX_LENGTH) return `must be at most ${EXPR_MAX_LENGTH} characters`;
  let parsed: Compiled;
  try {
    parsed = environment(how.loose ? 'run' : 'int').parse(src);
  } catch (err) {
    return firstLine(err);
  }
  // the cost first: it refuses what would make cel-js's type check exponential (a map keyed by maps)
  const cost = costProblem(expressionCost(parsed.ast, aliases.size));
  if (cost) return cost;
  let check = parsed.check();
  if (!check.valid && !how.loose) {
    const asDouble = environment('double').parse(src).check();
    if (asDouble.valid) check = asDouble;
  }
  if (!check.valid) return firstLine(check.error ?? 'does not type-check');
  if (!how.loose) {
    if (how.condition && check.type !== 'bool' && check.type !== 'dyn') return `gives ${check.type}, not a bool: a condition must be true or false`;
    const problem = betweenProblem(parsed.ast);
    if (problem) return problem;
  }
  return walk(parsed.ast, aliases);
}

/**
 * Parses an expression for a worker, refusing one over the cost bound without running it: a rule
 * stored before the bound existed must not hold the worker either. Throws the problem. `cost`:
 * its worst case, which the event's budget is charged before it runs (evaluate.ts).
 */
export function compileBounded(src: string, aliases: number): { run: Compiled; cost: number } {
  const c = compile(src);
  const cost = expressionCost(c.ast, aliases);
  const problem = costProblem(cost);
  if (problem) throw new Error(problem);
  return { run: c, cost: 'cost' in cost ? cost.cost : 0 };
}

/** The worst-case cost of an expression `checkExpression` passed (0 for one it would refuse). */
export function worstCase(src: string, aliases: number): number {
  try {
    const c = expressionCost(compile(src).ast, aliases);
    return 'cost' in c ? c.cost : 0;
  } catch {
    return 0;
  }
}

function walk(node: ASTNode, aliases: ReadonlySet<string>): string | null {
  switch (node.op) {
    case 'value':
    case 'id':
      return null;
    case '.':
    case '.?': {
      const [target, name] = node.args;
      if (target.op === 'id' && target.args === 'dev' && !aliases.has(name)) return `dev.${name}: no device alias "${name}" in "devices"`;
      return walk(target, aliases);
    }
    case '[]':
    case '[?]': {
      const [target, key] = node.args;
      if (target.op === 'id' && target.args === 'dev') {
        if (key.op !== 'value' || typeof key.args !== 'string') return 'dev[...]: the alias must be a string literal';
        if (!aliases.has(key.args)) return `dev["${key.args}"]: no device alias "${key.args}" in "devices"`;
      }
      return walk(target, aliases) ?? walk(key, aliases);
    }
    case 'call': {
      const [name, args] = node.args;
      if (BANNED_FUNCTIONS.has(name)) return `function ${name} is not allowed`;
      return walkAll(args, aliases);
    }
    case 'rcall': {
      const [name, target, args] = node.args;
      if (BANNED_FUNCTIONS.has(name)) return `function ${name} is not allowed`;
      return walk(target, aliases) ?? walkAll(args, aliases);
    }
    case 'list':
      return walkAll(node.args, aliases);
    case 'map':
      for (const [k, v] of node.args) {
        const problem = walk(k, aliases) ?? walk(v, aliases);
        if (problem) return problem;
      }
      return null;
    case '!_':
    case '-_':
      return walk(node.args, aliases);
    default:
      return walkAll(node.args as ASTNode[], aliases);
  }
}

function walkAll(nodes: readonly ASTNode[], aliases: ReadonlySet<string>): string | null {
  for (const n of nodes) {
    const problem = walk(n, aliases);
    if (problem) return problem;
  }
  return null;
}

/** A text with `{{ expr }}` parts: literal strings and expressions, in order. */
export type TemplatePart = string | { expr: string };

const TEMPLATE = /\{\{(.*?)\}\}/gs;

export function parseTemplate(text: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const m of text.matchAll(TEMPLATE)) {
    if (m.index > last) parts.push(text.slice(last, m.index));
    parts.push({ expr: m[1]!.trim() });
    last = m.index + m[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

/** Text of a value the way a template shows it. */
export function display(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  try {
    // `dev` is a Map (see evaluate.ts); shown as the object it stands for
    return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? Number(x) : x instanceof Map ? Object.fromEntries(x) : x));
  } catch {
    return String(v);
  }
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0] ?? msg;
}
