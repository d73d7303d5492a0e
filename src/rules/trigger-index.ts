/**
 * Which enabled rules of one home an event may trigger: a map from trigger key to rules, built
 * once per rule set, so finding the candidates of an event is a few lookups, not a pass over every
 * rule. Cron triggers are not indexed (the scheduler fires them by rule id). Whether a candidate
 * really fires (to/from, thresholds, params) is decided on the worker.
 */
import type { HubEvent } from '../../proto/app.js';
import type { Rule, RuleEvent } from './model.js';

function stateKey(hub: string, device: string, attr: string): string {
  return `s|${hub}|${device}|${attr}`;
}
function stateAnyKey(attr: string): string {
  return `s|*|${attr}`;
}
function eventKey(hub: string, device: string, event: string): string {
  return `e|${hub}|${device}|${event}`;
}
function eventAnyKey(event: string): string {
  return `e|*|${event}`;
}

export class TriggerIndex {
  /** trigger key → enabled rules with such a trigger */
  readonly #rules = new Map<string, Rule[]>();

  constructor(rules: Iterable<Rule>) {
    for (const rule of rules) {
      if (!rule.enabled) continue;
      for (const t of rule.triggers) {
        let key: string;
        if (t.type === 'state') key = t.hub !== undefined && t.device !== undefined ? stateKey(t.hub, t.device, t.attr) : stateAnyKey(t.attr);
        else if (t.type === 'event') key = t.hub !== undefined && t.device !== undefined ? eventKey(t.hub, t.device, t.event) : eventAnyKey(t.event);
        else continue;
        const list = this.#rules.get(key);
        if (!list) this.#rules.set(key, [rule]);
        else if (!list.includes(rule)) list.push(rule);
      }
    }
  }

  /** True when some enabled trigger may match this event: the cheap pre-check before any work. */
  listens(event: HubEvent): boolean {
    const index = this.#rules;
    if (index.size === 0) return false;
    if (event.kind === 'state') {
      for (const attr in event.attrs) if (index.has(stateKey(event.hub, event.device, attr)) || index.has(stateAnyKey(attr))) return true;
      return false;
    }
    if (event.kind === 'event') return index.has(eventKey(event.hub, event.device, event.event)) || index.has(eventAnyKey(event.event));
    return false;
  }

  /**
   * The rules that may fire on `ev`, by id. For a state event, each attribute some trigger watches
   * is appended to `watched` (the caller keeps its last value).
   */
  candidates(ev: RuleEvent, watched: string[]): Map<string, Rule> {
    // plain loops, no closures: this runs for every event a trigger listens to
    const out = new Map<string, Rule>();
    if (ev.kind === 'state') {
      for (const attr in ev.attrs) {
        const exact = this.#rules.get(stateKey(ev.hub, ev.device, attr));
        const any = this.#rules.get(stateAnyKey(attr));
        if (!exact && !any) continue;
        watched.push(attr);
        if (exact) for (const r of exact) out.set(r.id, r);
        if (any) for (const r of any) out.set(r.id, r);
      }
    } else if (ev.kind === 'event') {
      const exact = this.#rules.get(eventKey(ev.hub, ev.device, ev.event));
      const any = this.#rules.get(eventAnyKey(ev.event));
      if (exact) for (const r of exact) out.set(r.id, r);
      if (any) for (const r of any) out.set(r.id, r);
    }
    return out;
  }
}
