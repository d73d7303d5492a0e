/**
 * A static worst-case cost of a condition, in the manner of cel-go's cost estimator: cel-js (8.x)
 * bounds an expression's size and depth but not its work, and has no run-time cost or size limit,
 * so nested macros (`l.exists(a, l.exists(b, …))`) are exponential in a few hundred characters.
 *
 * Every value gets an upper bound of its size (a Shape): characters of a string, bytes, entries
 * of a list or map, and the bound of its elements. A macro (all, exists, exists_one, map, filter)
 * costs its body times the entries of what it ranges over; building, copying, comparing or
 * scanning a value costs its size. A value's size only grows by work the estimate counts, so the
 * bound on cost also bounds what an expression can build at run time (list and string `+`,
 * `join`, `split`, `map`).
 */
import type { ASTNode } from '@marcbachmann/cel-js';
import { LIMITS } from '../protocol/codec.js';
import { RULE_LIMITS } from './rule-limits.js';

/**
 * The most an expression may cost: one unit is about one step of the interpreter (an operator,
 * a call, one entry of a list), a character a tenth of one. Measured here at about 5 ms.
 */
export const EXPR_MAX_COST = 100_000;

/**
 * The most the expressions evaluated for one event of a home may cost together: the conditions of
 * every rule it triggers and the templates of those that pass (evaluate.ts charges each its worst
 * case before running it). Ten expressions at the bound, about 50 ms of a worker thread here.
 */
export const EVENT_MAX_COST = 1_000_000;

const CHAR_COST = 0.1;
/** a macro's own work each time it runs (its scope and accumulator), measured against its steps */
const MACRO_SETUP = 20;

/**
 * An upper bound of a value's size. Shapes are never changed once made, and are shared: a map
 * literal `{v: v}` has one shape as its key and its value, so a chain of them is a DAG whose tree
 * doubles per link. `weight` and `join` are memoized per shape, so they are linear in the DAG, not
 * the tree (review "rulesdos": one 300-character condition held the node's main thread for seconds).
 */
export interface Shape {
  /** characters of a string, bytes of bytes */
  chars: number;
  /** entries of a list or map */
  items: number;
  /** bound of every element of a list, every value of a map */
  elem: Shape | null;
  /** bound of every key of a map */
  key: Shape | null;
}

const SCALAR: Shape = { chars: 0, items: 0, elem: null, key: null };
const str = (chars: number): Shape => ({ chars, items: 0, elem: null, key: null });
const list = (items: number, elem: Shape): Shape => ({ chars: 0, items, elem, key: null });
const map = (items: number, key: Shape, elem: Shape): Shape => ({ chars: 0, items, elem, key });

/**
 * What the variables hold, from the protocol's ceilings: at most `LIMITS.attrsPerDevice` (64)
 * attributes a device or event, names and ids of `LIMITS.idLength` (64), strings of
 * `LIMITS.stringBytes` (1024) characters; `dev` has one entry per alias of the rule (at most
 * `RULE_LIMITS.devices`, 20). Built per call: schemas/rules.ts imports expr.ts, which imports this.
 */
function variables(aliases: number): Scope {
  const name = str(LIMITS.idLength);
  const attrs = map(LIMITS.attrsPerDevice, name, str(LIMITS.stringBytes));
  const dev: Scope = { name: 'dev', shape: map(aliases, name, attrs), up: null };
  const time: Scope = { name: 'time', shape: map(16, name, name), up: dev };
  return { name: 'event', shape: map(16, name, join(str(LIMITS.stringBytes), attrs)), up: time };
}

function joinOf(a: Shape | null, b: Shape | null): Shape | null {
  return a && b ? join(a, b) : (a ?? b);
}

const joined = new WeakMap<Shape, WeakMap<Shape, Shape>>();

/** A bound of both values (a ternary's branches, a list's elements). */
export function join(a: Shape, b: Shape): Shape {
  if (a === b) return a;
  let withA = joined.get(a);
  const known = withA?.get(b);
  if (known) return known;
  const shape = { chars: Math.max(a.chars, b.chars), items: Math.max(a.items, b.items), elem: joinOf(a.elem, b.elem), key: joinOf(a.key, b.key) };
  if (!withA) joined.set(a, (withA = new WeakMap()));
  withA.set(b, shape);
  return shape;
}

/** Both values' sizes added: what `+` of two strings, bytes or lists gives. */
function sum(a: Shape, b: Shape): Shape {
  return { chars: a.chars + b.chars, items: a.items + b.items, elem: joinOf(a.elem, b.elem), key: joinOf(a.key, b.key) };
}

const weights = new WeakMap<Shape, number>();

/** The cost of reading all of a value (comparing, searching, converting, showing it). */
export function weight(s: Shape): number {
  const known = weights.get(s);
  if (known !== undefined) return known;
  const w = s.chars * CHAR_COST + s.items * (1 + (s.elem ? weight(s.elem) : 0) + (s.key ? weight(s.key) : 0));
  weights.set(s, w);
  return w;
}

/**
 * How deep lists and maps may nest in what an expression builds: no rule needs more, and each
 * level is a type cel-js's check keeps (review "exprfuzz": depth-14 literals, ~150 types a check).
 */
export const MAX_NESTING = 4;

const depths = new WeakMap<Shape, number>();

function depthOf(s: Shape): number {
  const known = depths.get(s);
  if (known !== undefined) return known;
  const d = s.elem === null && s.key === null ? 0 : 1 + Math.max(s.elem ? depthOf(s.elem) : 0, s.key ? depthOf(s.key) : 0);
  depths.set(s, d);
  return d;
}

/** `shape`, refused (Unbounded) when it nests lists and maps deeper than MAX_NESTING. */
function nested(shape: Shape): Shape {
  if (depthOf(shape) > MAX_NESTING) throw new Unbounded(`lists and maps nest at most ${MAX_NESTING} deep`);
  return shape;
}

/** The cost of building a value whose elements exist already (`+` of lists copies references). */
function shallow(s: Shape): number {
  return s.chars * CHAR_COST + s.items;
}

const elemOf = (s: Shape): Shape => s.elem ?? SCALAR;
/** What a macro's variable ranges over: a list's elements, a map's keys. */
const entryOf = (s: Shape): Shape => s.key ?? elemOf(s);

/** Variables in scope: macro iteration variables and `cel.bind` names shadow the outer ones, down to dev, time and event. */
interface Scope {
  name: string;
  shape: Shape;
  up: Scope | null;
}

interface Estimate {
  cost: number;
  shape: Shape;
}

/** An expression the estimate cannot bound (a function it does not know). */
class Unbounded extends Error {
  override name = 'Unbounded';
}

/** The worst-case cost of a parsed expression; throws Unbounded for a function it does not know. */
function estimate(node: ASTNode, scope: Scope | null): Estimate {
  switch (node.op) {
    case 'value': {
      const v = node.args;
      return { cost: 1, shape: typeof v === 'string' ? str(v.length) : v instanceof Uint8Array ? str(v.length) : SCALAR };
    }
    case 'id': {
      for (let s = scope; s; s = s.up) if (s.name === node.args) return { cost: 1, shape: s.shape };
      return { cost: 1, shape: SCALAR }; // a namespace (cel, optional)
    }
    case '.':
    case '.?': {
      const t = estimate(node.args[0], scope);
      return { cost: t.cost + 1, shape: elemOf(t.shape) };
    }
    case '[]':
    case '[?]': {
      const t = estimate(node.args[0], scope);
      const k = estimate(node.args[1], scope);
      return { cost: t.cost + k.cost + 1, shape: elemOf(t.shape) };
    }
    case 'list': {
      let cost = 1 + node.args.length;
      let elem: Shape | null = null;
      for (const a of node.args) {
        const e = estimate(a, scope);
        cost += e.cost;
        elem = joinOf(elem, e.shape);
      }
      return { cost, shape: nested(list(node.args.length, elem ?? SCALAR)) };
    }
    case 'map': {
      let cost = 1 + node.args.length;
      let key: Shape | null = null;
      let elem: Shape | null = null;
      for (const [k, v] of node.args) {
        const ke = estimate(k, scope);
        // CEL's keys are scalars; an aggregate's type doubles per nesting, and cel-js's type check with it (review "rulesdos").
        // Only a certain one: `event.*` may be a string or a map (its params), typed dyn, as any value of `dev` (review "diff24")
        if ((ke.shape.elem !== null || ke.shape.key !== null) && ke.shape.chars === 0) throw new Unbounded('a map key must be an int, uint, bool or string, not a list or map');
        const ve = estimate(v, scope);
        cost += ke.cost + ve.cost;
        key = joinOf(key, ke.shape);
        elem = joinOf(elem, ve.shape);
      }
      return { cost, shape: nested(map(node.args.length, key ?? SCALAR, elem ?? SCALAR)) };
    }
    case '?:': {
      const [c, t, f] = node.args.map((a) => estimate(a, scope)) as [Estimate, Estimate, Estimate];
      return { cost: 1 + c.cost + Math.max(t.cost, f.cost), shape: join(t.shape, f.shape) };
    }
    case '!_':
    case '-_':
      return { cost: 1 + estimate(node.args, scope).cost, shape: SCALAR };
    case 'call':
      return call(node.args[0], null, node.args[1], scope);
    case 'rcall':
      return call(node.args[0], node.args[1], node.args[2], scope);
    default: {
      const [a, b] = [estimate(node.args[0], scope), estimate(node.args[1], scope)];
      const cost = 1 + a.cost + b.cost;
      switch (node.op) {
        case '+': {
          const shape = sum(a.shape, b.shape);
          return { cost: cost + shallow(shape), shape };
        }
        case '==':
        case '!=':
        case '<':
        case '<=':
        case '>':
        case '>=':
          // equal sizes are compared entry by entry up to the shorter value's end
          return { cost: cost + Math.min(weight(a.shape), weight(b.shape)), shape: SCALAR };
        case 'in':
          // each entry of the list (a map's keys: a look-up, counted as a scan) compared with the value
          return { cost: cost + b.shape.items * (1 + Math.min(weight(a.shape), weight(entryOf(b.shape)))), shape: SCALAR };
        default: // && || - * / %
          return { cost, shape: SCALAR };
      }
    }
  }
}

/** Comprehension macros: name → how the result's shape follows from the range's and the body's. */
const MACROS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);

/**
 * What `duration()` may parse: a literal of at most 6 number-unit pairs, as Go writes them. cel-js
 * parses with an unanchored regex whose backtracking is cubic in a run of digits without a unit
 * (800 digits: half a second; a list macro over it held a rule worker past its 2 s deadline), so
 * a computed string, which a hub's report could make any length, is refused.
 */
const DURATION_LITERAL = /^[-+]?(?:\d{1,12}(?:\.\d{1,9})?(?:ns|us|µs|ms|s|m|h)){1,6}$/;

function call(name: string, target: ASTNode | null, args: readonly ASTNode[], scope: Scope | null): Estimate {
  if (target && MACROS.has(name)) return macro(name, target, args, scope);
  if (name === 'duration' && !isDurationLiteral(target, args)) {
    throw new Unbounded('duration() takes a string literal such as "90s" or "1h30m" (a computed string could take seconds to parse)');
  }
  if (target?.op === 'id' && target.args === 'cel' && name === 'bind' && args[0]?.op === 'id' && args.length === 3) {
    const init = estimate(args[1]!, scope);
    const body = estimate(args[2]!, { name: args[0].args, shape: init.shape, up: scope });
    return { cost: 1 + init.cost + body.cost, shape: body.shape };
  }
  if (name === 'has') return { cost: 1 + sumCost(args, scope), shape: SCALAR };
  const t = target ? estimate(target, scope) : null;
  const as = args.map((a) => estimate(a, scope));
  const cost = 1 + (t?.cost ?? 0) + as.reduce((n, a) => n + a.cost, 0);
  // the receiver, or the first argument of a global function
  const self = t?.shape ?? as[0]?.shape ?? SCALAR;
  const read = weight(self) + as.reduce((n, a) => n + weight(a.shape), 0);
  const out = (shape: Shape, work = read + shallow(shape)): Estimate => ({ cost: cost + work, shape });
  switch (name) {
    case 'size':
      // a string's counts its code points one by one (cel-js), a list's or map's is its length (review "exprfuzz")
      return out(SCALAR, self.chars * CHAR_COST);
    case 'hasValue':
    case 'at':
      return out(SCALAR, 0);
    // conversions and parsers: read their input once
    case 'int':
    case 'uint':
    case 'double':
    case 'bool':
    case 'type':
    case 'duration':
    case 'timestamp':
    case 'startsWith':
    case 'endsWith':
    case 'contains': // V8 searches with Boyer-Moore(-Horspool): linear in both strings
    case 'indexOf':
    case 'lastIndexOf':
    case 'between':
      return out(SCALAR);
    case 'string':
      return out(str(self.chars + 32));
    case 'bytes':
      return out(str(self.chars * 3)); // UTF-8
    case 'hex':
      return out(str(self.chars * 2));
    case 'base64':
      return out(str(Math.ceil(self.chars / 3) * 4));
    case 'of': // optional.of(x): the receiver is the namespace
    case 'ofNonZeroValue':
      // each optional<…> it wraps is one more type cel-js keeps for the process's life, with no bound on the nesting: `.?` and `orValue` do what a rule needs
      throw new Unbounded(`optional.${name}() is not allowed (its types nest without bound): use \`.?\` and orValue()`);
    case 'dyn':
    case 'value':
    case 'lowerAscii':
    case 'upperAscii':
    case 'trim':
    case 'substring':
      return out(self);
    case 'none':
      return out(SCALAR, 0);
    case 'or':
    case 'orValue':
      return out(join(self, as[0]?.shape ?? SCALAR), 0);
    case 'split':
      return out(list(self.chars + 1, str(self.chars)), read + 2 * (self.chars + 1));
    case 'join': {
      const each = elemOf(self).chars + (as[0]?.shape.chars ?? 0);
      return out(str(self.items * each));
    }
    default:
      if (/^get[A-Z]/.test(name)) return out(SCALAR); // timestamp and duration fields
      throw new Unbounded(`function ${name} is not allowed here (its cost cannot be bounded)`);
  }
}

function isDurationLiteral(target: ASTNode | null, args: readonly ASTNode[]): boolean {
  const arg = args[0];
  return target === null && args.length === 1 && arg?.op === 'value' && typeof arg.args === 'string' && DURATION_LITERAL.test(arg.args);
}

function sumCost(args: readonly ASTNode[], scope: Scope | null): number {
  return args.reduce((n, a) => n + estimate(a, scope).cost, 0);
}

/** `range.m(v, body)` and `range.map(v, filter, body)`: the body once per entry of the range. */
function macro(name: string, target: ASTNode, args: readonly ASTNode[], scope: Scope | null): Estimate {
  const range = estimate(target, scope);
  const v = args[0];
  if (v?.op !== 'id' || args.length < 2) throw new Unbounded(`${name}: the first argument must be a variable name`);
  const inner: Scope = { name: v.args, shape: entryOf(range.shape), up: scope };
  const bodies = args.slice(1).map((a) => estimate(a, inner));
  const perEntry = 1 + bodies.reduce((n, b) => n + b.cost, 0);
  const n = range.shape.items;
  const shape = name === 'map' ? nested(list(n, bodies[bodies.length - 1]!.shape)) : name === 'filter' ? list(n, inner.shape) : SCALAR;
  return { cost: MACRO_SETUP + range.cost + n * (perEntry + 1), shape };
}

/**
 * The worst-case cost of a parsed expression, or why it has none; with reading its result whole
 * (a template shows it as text, a condition's non-boolean result is shown in its error).
 */
export function expressionCost(ast: ASTNode, aliases: number = RULE_LIMITS.devices): { cost: number } | { problem: string } {
  try {
    const e = estimate(ast, variables(aliases));
    return { cost: Math.ceil(e.cost + weight(e.shape)) };
  } catch (err) {
    if (err instanceof Unbounded) return { problem: err.message };
    throw err;
  }
}

/** Null when an expression of this cost (`expressionCost`) is within EXPR_MAX_COST, else the message that says it is not. */
export function costProblem(c: ReturnType<typeof expressionCost>): string | null {
  if ('problem' in c) return c.problem;
  if (c.cost <= EXPR_MAX_COST) return null;
  return `is too costly: its worst case is about ${c.cost.toLocaleString('en-US')} steps, more than the ${EXPR_MAX_COST.toLocaleString('en-US')} allowed (each exists/all/exists_one/map/filter multiplies the cost of its body by the entries of the list or map it ranges over)`;
}
