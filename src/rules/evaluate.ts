/**
 * The worker side of rule evaluation: trigger matching, conditions and action templates. Runs on
 * the rule workers (`worker.ts`); plain functions, so tests may also call it directly.
 *
 * Compiled rules are cached per home and keyed by the home's version: a task of a newer home
 * version drops what was compiled for older ones, and each compiled rule also checks its own rule
 * version, so a task built from a stale rule set is still evaluated as sent.
 *
 * One event's rules share a budget (EVENT_MAX_COST): each condition and template is charged its
 * static worst case before it runs, cheapest rules first; once a charge does not fit, that rule and
 * the event's later triggered ones are not evaluated (`dropped: 'event_budget'`).
 */
import { performance } from 'node:perf_hooks';
import type { AttrValue, Attrs } from '../../proto/frames.js';
import { unpackRule, type WireTask } from './eval-wire.js';
import { EVENT_BUDGET_MESSAGE, charge, chargeCompile, type Budget } from './event-budget.js';
import { EVENT_MAX_COST } from './expr-cost.js';
import { compileBounded, display, parseTemplate, type Compiled } from './expr.js';
import { deviceKey, type ConditionReport, type EvalResult, type EvalTask, type PlannedAction, type Rule, type RuleEvent, type RuleOutcome, type Trigger } from './model.js';
import { notificationText } from './notify-text.js';

type CompiledPart = string | Compiled;

interface CompiledRule {
  version: number;
  /** the rule it was compiled from (a batch names it by id and version only when it is cached) */
  rule: Rule;
  conditions: Compiled[];
  /** worst-case cost of each condition */
  costs: number[];
  /** per action index: compiled title and body of notify actions */
  templates: Map<number, { title: CompiledPart[]; body: CompiledPart[] }>;
  /** worst-case cost of all its templates together */
  templateCost: number;
  error: string | null;
}

interface HomeCache {
  version: number;
  rules: Map<string, CompiledRule>;
}

export interface EvaluatorOptions {
  /** homes whose compiled rules a worker keeps; least recently used go first; @default 5_000 */
  maxHomes?: number;
}

export class RuleEvaluator {
  private readonly homes = new Map<string, HomeCache>();
  private readonly maxHomes: number;

  constructor(options: EvaluatorOptions = {}) {
    this.maxHomes = options.maxHomes ?? 5_000;
  }

  /** homes with compiled rules in this evaluator */
  get cachedHomes(): number {
    return this.homes.size;
  }

  evaluate(task: EvalTask): EvalResult {
    return this.evaluateWith(task, task.rules, (rule) => rule);
  }

  /** A task as a batch carries it: each rule unpacked only when this version is not compiled yet. */
  evaluateWire(task: WireTask): EvalResult {
    return this.evaluateWith(task, task.rules, (r) => unpackRule(r.bytes));
  }

  private evaluateWith<R extends { id: string; version: number }>(task: Omit<EvalTask, 'rules'>, rules: readonly R[], body: (r: R) => Rule): EvalResult {
    const home = this.home(task.homeId, task.homeVersion);
    let compiled = 0;
    const time = localTime(task.now, task.timeZone);
    const budget: Budget = { left: EVENT_MAX_COST, spent: false };
    const outcomes: RuleOutcome[] = [];
    const ready: Array<{ c: CompiledRule; us: number }> = [];
    for (const r of rules) {
      const started = performance.now();
      let c = home.rules.get(r.id);
      if (!c || c.version !== r.version) {
        const rule = body(r);
        // a rule this event does not trigger needs no compiling; compiling is work too (a fresh
        // worker had taken seconds over a home's 200 rules), charged to the budget by length
        const triggered = firedBy(rule, task) !== null;
        if (!triggered || !chargeCompile(budget, rule)) {
          const outcome: RuleOutcome = { ruleId: rule.id, version: rule.version, triggered, passed: false, actions: [], evalUs: 0 };
          if (triggered) Object.assign(outcome, { error: EVENT_BUDGET_MESSAGE, dropped: 'event_budget' });
          outcome.evalUs = Math.round((performance.now() - started) * 1000);
          outcomes.push(outcome);
          continue;
        }
        c = compileRule(rule);
        home.rules.set(r.id, c);
        compiled++;
      }
      ready.push({ c, us: (performance.now() - started) * 1000 });
    }
    // cheapest first: a home's costly rules cannot use up the budget of its cheap ones
    ready.sort((a, b) => worst(a.c) - worst(b.c));
    for (const { c, us } of ready) {
      const started = performance.now();
      const outcome = evaluateRule(c.rule, c, task, time, budget);
      outcome.evalUs = Math.round(us + (performance.now() - started) * 1000);
      outcomes.push(outcome);
    }
    return { outcomes, compiled };
  }

  private home(homeId: string, version: number): HomeCache {
    let home = this.homes.get(homeId);
    if (home) {
      this.homes.delete(homeId); // re-inserted last: least recently used first in the map
      if (version > home.version) home = { version, rules: new Map() };
    } else {
      home = { version, rules: new Map() };
      if (this.homes.size >= this.maxHomes) {
        const oldest = this.homes.keys().next();
        if (!oldest.done) this.homes.delete(oldest.value);
      }
    }
    this.homes.set(homeId, home);
    return home;
  }
}

/** A rule's worst case for one event: all its conditions and templates. */
function worst(c: CompiledRule): number {
  return c.costs.reduce((n, x) => n + x, c.templateCost);
}

function compileRule(rule: Rule): CompiledRule {
  const out: CompiledRule = { version: rule.version, rule, conditions: [], costs: [], templates: new Map(), templateCost: 0, error: null };
  try {
    const aliases = Object.keys(rule.devices).length;
    for (const [i, src] of rule.conditions.entries()) {
      const f = compileField(src, `conditions[${i}]`, aliases);
      out.conditions.push(f.run);
      out.costs.push(f.cost);
    }
    const template = (text: string, field: string): CompiledPart[] =>
      parseTemplate(text).map((p) => {
        if (typeof p === 'string') return p;
        const f = compileField(p.expr, field, aliases);
        out.templateCost += f.cost;
        return f.run;
      });
    rule.actions.forEach((a, i) => {
      if (a.type === 'notify') out.templates.set(i, { title: template(a.title, `actions[${i}].title`), body: template(a.body, `actions[${i}].body`) });
    });
  } catch (err) {
    out.error = `compile: ${message(err)}`;
  }
  return out;
}

function compileField(src: string, field: string, aliases: number): { run: Compiled; cost: number } {
  try {
    return compileBounded(src, aliases);
  } catch (err) {
    throw new Error(`${field}: ${message(err)}`, { cause: err });
  }
}

function evaluateRule(rule: Rule, c: CompiledRule, task: Omit<EvalTask, 'rules'>, time: LocalTime, budget: Budget): RuleOutcome {
  const outcome: RuleOutcome = { ruleId: rule.id, version: rule.version, triggered: false, passed: false, actions: [], evalUs: 0 };
  if (c.error) {
    outcome.error = c.error;
    return outcome;
  }
  const fired = firedBy(rule, task);
  const ev = task.event;
  if (!fired) return outcome;
  outcome.triggered = true;
  if (fired.index >= 0) outcome.trigger = fired.index;

  const overBudget = (): RuleOutcome => {
    outcome.error = EVENT_BUDGET_MESSAGE;
    outcome.dropped = 'event_budget';
    if (reports) outcome.conditions = reports;
    return outcome;
  };
  const ctx = { dev: devices(rule, task), time, event: eventVar(ev, task.prev, fired.attr) };
  const reports: ConditionReport[] | undefined = task.explain ? [] : undefined;
  let passed = true;
  for (let i = 0; i < c.conditions.length; i++) {
    const expr = rule.conditions[i]!;
    if (!charge(budget, c.costs[i]!)) return overBudget();
    let value: unknown;
    try {
      value = c.conditions[i]!(ctx);
    } catch (err) {
      const msg = `conditions[${i}]: ${message(err)}`;
      reports?.push({ expr, error: message(err) });
      outcome.error ??= msg;
      passed = false;
      if (!reports) break;
      continue;
    }
    if (typeof value !== 'boolean') {
      const msg = `conditions[${i}]: gave ${display(value) || typeof value}, not true or false`;
      reports?.push({ expr, error: msg });
      outcome.error ??= msg;
      passed = false;
      if (!reports) break;
      continue;
    }
    reports?.push({ expr, value });
    if (!value) {
      passed = false;
      if (!reports) break;
    }
  }
  if (reports) outcome.conditions = reports;
  if (!passed || outcome.error) return outcome;
  if (!charge(budget, c.templateCost)) return overBudget();
  outcome.passed = true;
  outcome.actions = rule.actions.map((a, i): PlannedAction => {
    if (a.type !== 'notify') return a;
    const t = c.templates.get(i)!;
    // fitted here, not only when sent: a dry run shows the text as it would go out
    return { type: 'notify', ...notificationText(render(t.title, ctx), render(t.body, ctx), rule.name) };
  });
  return outcome;
}

/** The trigger of `rule` the task's event fires (index -1: a schedule or manual event without a cron trigger), or null. */
function firedBy(rule: Rule, task: Pick<EvalTask, 'event' | 'prev'>): { index: number; attr?: string } | null {
  const ev = task.event;
  if (ev.kind === 'schedule' || ev.kind === 'manual') return { index: rule.triggers.findIndex((t) => t.type === 'cron') };
  for (let i = 0; i < rule.triggers.length; i++) {
    const t = rule.triggers[i]!;
    if (matches(t, ev, task.prev)) return t.type === 'state' ? { index: i, attr: t.attr } : { index: i };
  }
  return null;
}

/** Does this trigger fire for this event? See StateTrigger for the transition rules. */
export function matches(t: Trigger, ev: RuleEvent, prev: Record<string, AttrValue>): boolean {
  if (t.type === 'cron') return false;
  if (ev.kind !== t.type) return false;
  if (t.hub !== undefined && (t.hub !== ev.hub || t.device !== ev.device)) return false;
  if (t.type === 'event') {
    if (ev.kind !== 'event' || ev.event !== t.event) return false;
    // own keys only: a parameter the event lacks is a mismatch, whatever Object.prototype has of that name
    if (t.params) for (const k in t.params) if (Object.hasOwn(t.params, k) && (!Object.hasOwn(ev.params, k) || ev.params[k] !== t.params[k])) return false;
    return true;
  }
  if (ev.kind !== 'state' || !Object.hasOwn(ev.attrs, t.attr)) return false;
  const v = ev.attrs[t.attr];
  const known = Object.hasOwn(prev, t.attr);
  const p = prev[t.attr];
  if (known && p === v) return false;
  if (t.to !== undefined && v !== t.to) return false;
  if (t.from !== undefined && (!known || p !== t.from)) return false;
  if (t.above !== undefined || t.below !== undefined) {
    const inRange = (x: unknown) => typeof x === 'number' && (t.above === undefined || x > t.above) && (t.below === undefined || x < t.below);
    return inRange(v) && !(known && inRange(p));
  }
  return true;
}

/** `dev.<alias>` of a device without reported state: no attributes (shared, never written). */
const NO_ATTRS: Attrs = Object.freeze(Object.create(null) as Attrs);
/** `dev` of a rule without aliases (shared, never written). */
const NO_DEVICES: ReadonlyMap<string, CelMap> = new Map();

type CelMap = Attrs | ReadonlyMap<string, AttrValue>;

/**
 * An attribute map as cel-js takes it. cel-js tells a map by its `constructor` (Object, Map or
 * none), so an own attribute `constructor` would make every expression reading the map fail with
 * "Unsupported type": such a map goes in as a Map. (Hubs and the API refuse that name today; this
 * keeps conditions working should a map with it arrive anyway.) One own-key check otherwise.
 */
function celMap(attrs: Attrs): CelMap {
  return Object.hasOwn(attrs, 'constructor') ? new Map(Object.entries(attrs)) : attrs;
}

/**
 * `dev`: alias → reported attributes. A Map, so that every alias is just a key: as an object key,
 * `__proto__` would set the prototype, and an own `constructor` key makes cel-js refuse the object
 * as a CEL map ("Unsupported type") in every condition of the rule.
 */
function devices(rule: Rule, task: Pick<EvalTask, 'state'>): ReadonlyMap<string, CelMap> {
  const refs = rule.devices;
  let out: Map<string, CelMap> | null = null;
  for (const alias in refs) {
    if (!Object.hasOwn(refs, alias)) continue;
    const ref = refs[alias]!;
    const key = deviceKey(ref.hub, ref.device);
    (out ??= new Map()).set(alias, Object.hasOwn(task.state, key) ? celMap(task.state[key]!) : NO_ATTRS);
  }
  return out ?? NO_DEVICES;
}

function eventVar(ev: RuleEvent, prev: Record<string, AttrValue>, attr: string | undefined): Record<string, unknown> {
  switch (ev.kind) {
    case 'state': {
      const out: Record<string, unknown> = { kind: 'state', hub: ev.hub, device: ev.device, attrs: celMap(ev.attrs), ts: ev.ts };
      if (attr !== undefined) {
        out.attr = attr;
        out.value = Object.hasOwn(ev.attrs, attr) ? ev.attrs[attr] : null;
        out.prev = Object.hasOwn(prev, attr) ? prev[attr] : null;
      }
      return out;
    }
    case 'event':
      return { kind: 'event', hub: ev.hub, device: ev.device, name: ev.event, params: celMap(ev.params), ts: ev.ts };
    case 'schedule':
      return { kind: 'schedule', scheduledAt: ev.scheduledAt, ts: ev.ts };
    case 'manual':
      return { kind: 'manual', ts: ev.ts };
  }
}

function render(parts: CompiledPart[], ctx: Record<string, unknown>): string {
  let out = '';
  for (const p of parts) {
    if (typeof p === 'string') out += p;
    else {
      try {
        out += display(p(ctx));
      } catch {
        out += '?'; // a notification still goes out when one placeholder cannot be filled
      }
    }
  }
  return out;
}

/** The home's wall-clock time as conditions see it (`time.*`). */
export interface LocalTime {
  hour: number;
  minute: number;
  second: number;
  /** "HH:MM", 24 h, zero-padded: compares as text */
  hhmm: string;
  /** ISO day of week: 1 Monday … 7 Sunday */
  weekday: number;
  weekend: boolean;
  day: number;
  month: number;
  year: number;
  /** "YYYY-MM-DD" */
  date: string;
  zone: string;
  epochMs: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
/**
 * Formatters kept at most (about 36 KB of memory each): emptied whole beyond it, a bound and not a
 * cache policy. Settings are stored with the zone's canonical name, about 600 of them; a store
 * written before that may spell one zone in many casings.
 */
const MAX_FORMATTERS = 1_024;

/** Formatters held now (for tests of the bound). */
export function formattersKept(): number {
  return formatters.size;
}

const WEEKDAYS: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };

export function localTime(now: number, timeZone: string): LocalTime {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      weekday: 'short',
    });
    if (formatters.size >= MAX_FORMATTERS) formatters.clear();
    formatters.set(timeZone, f);
  }
  const parts: Record<string, string> = {};
  for (const p of f.formatToParts(now)) parts[p.type] = p.value;
  const hour = Number(parts.hour) % 24;
  const minute = Number(parts.minute);
  const weekday = WEEKDAYS[parts.weekday ?? ''] ?? 0;
  return {
    hour,
    minute,
    second: Number(parts.second),
    hhmm: `${String(hour).padStart(2, '0')}:${parts.minute}`,
    weekday,
    weekend: weekday >= 6,
    day: Number(parts.day),
    month: Number(parts.month),
    year: Number(parts.year),
    date: `${parts.year}-${parts.month}-${parts.day}`,
    zone: timeZone,
    epochMs: now,
  };
}

function message(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return m.split('\n')[0] ?? m;
}
