/**
 * A rule's notification fitted to the push queue's limits: a rendering over them is cut and still
 * queued (it was refused, and the rule never notified), an empty one takes the rule's name, and an
 * emoji is never cut in half. Through the engine and a real worker pool, so what the push queue
 * accepted is what a user receives, and the dry run shows that same text.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PUSH_LIMITS, validatePushNotification } from '../../src/ports/push-queue/push-queue.js';
import { notificationText } from '../../src/rules/notify-text.js';
import { cutText } from '../../src/protocol/well-formed.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { rig, warmPool, type Rig } from './rules-fixtures.js';

const pool = warmPool();
let r: Rig;
afterEach(async () => {
  await r?.close();
});

/** a lone half of a surrogate pair (with `u`, a whole pair is one code point and does not match) */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
/** 1,024 UTF-16 code units, the longest string attribute a hub may report */
const LONG = 'x'.repeat(1_024);
const EMOJI = '💧'.repeat(512);
const TWENTY = `[${Array(20).fill(0).join(',')}]`;

const leakRule = (title: string, body: string) => ({ name: 'Water leak', triggers: [{ type: 'event', event: 'leak' }], actions: [{ type: 'notify', title, body }] });

describe('cutText', () => {
  it('leaves text within the limit as it is, and cuts longer text to the limit ending in …', () => {
    expect(cutText('abc', 3)).toBe('abc');
    expect(cutText('abcd', 3)).toBe('ab…');
    expect(cutText('abcd', 3)).toHaveLength(3);
  });

  it('never keeps half of an emoji: the cut moves before the pair when the limit falls inside it', () => {
    // "a💧💧": code units a, hi, lo, hi, lo; a limit of 3 keeps 2 units, the 2nd a high surrogate
    expect(cutText('a💧💧', 3)).toBe('a…');
    expect(cutText('a💧💧', 4)).toBe('a💧…');
    for (let max = 2; max <= 12; max++) {
      const cut = cutText(`${'a'.repeat(max % 2)}${EMOJI}`, max);
      expect(cut.length).toBeLessThanOrEqual(max);
      expect(LONE_SURROGATE.test(cut)).toBe(false);
    }
  });
});

describe('notificationText', () => {
  it('an empty or blank rendering takes the rule’s name; the result passes the push queue’s check', () => {
    expect(notificationText('', ' \n', 'Water leak')).toEqual({ title: 'Water leak', body: 'Water leak' });
    const fitted = notificationText(LONG, LONG + LONG, 'r');
    expect(fitted.title).toHaveLength(PUSH_LIMITS.title);
    expect(fitted.body).toHaveLength(PUSH_LIMITS.body);
    expect(() => validatePushNotification({ homeId: 'home1', ...fitted, dedupKey: 'k' })).not.toThrow();
    expect(notificationText(fitted.title, fitted.body, 'r')).toEqual(fitted);
  });

  it('a lone surrogate a template rendered (CEL substring counts UTF-16 units) becomes U+FFFD, as every store would keep it', () => {
    expect(notificationText('\ud83d opened', 'a \udeaa b 🚪', 'r')).toEqual({ title: '\ufffd opened', body: 'a \ufffd b 🚪' });
  });
});

describe('through the engine', () => {
  it('half an emoji from substring reaches the push queue as U+FFFD, not as a lone surrogate (review "unicode")', async () => {
    r = rig(pool(), Date.UTC(2026, 6, 1, 10));
    await r.store.createRule('home1', validateRuleSpec(leakRule('{{ event.params.msg.substring(0, 1) }} opened', 'ok')));
    r.hubs.event('home1-hub', 'bath-leak', 'leak', { msg: '🚪 front' });
    await r.settle();
    expect(r.pushes.map((p) => p.notification.title)).toEqual(['\ufffd opened']);
  });

  it('a title and body rendered over the push limits are cut and queued, not dropped; the dry run shows the same text', async () => {
    r = rig(pool(), Date.UTC(2026, 6, 1, 10));
    // the review's two cases: a title built by map() (261 characters), a hub's 1,024-character attribute
    const rule = await r.store.createRule('home1', validateRuleSpec(leakRule(`{{ ${TWENTY}.map(x, time.date) }}`, 'Leak: {{ event.params.msg }} {{ event.params.msg }}')));
    r.hubs.event('home1-hub', 'bath-leak', 'leak', { msg: LONG });
    await r.settle();

    expect(r.pushes).toHaveLength(1);
    const sent = r.pushes[0]!.notification;
    expect(sent.title).toHaveLength(PUSH_LIMITS.title);
    expect(sent.title.startsWith('["2026-07-01","2026-07-01",')).toBe(true);
    expect(sent.title.endsWith('…')).toBe(true);
    expect(sent.body).toBe(`Leak: ${LONG} ${LONG}`.slice(0, PUSH_LIMITS.body - 1) + '…');
    const stats = r.engine.status(rule.id, rule.version).stats;
    expect(stats.lastError).toBeNull();
    expect(stats.actionsRun).toBe(1);

    const dry = await r.engine.dryRun('home1', rule.id, { kind: 'event', hub: 'home1-hub', device: 'bath-leak', event: 'leak', params: { msg: LONG }, ts: r.clock.now });
    expect(dry.actions).toEqual([{ type: 'notify', title: sent.title, body: sent.body }]);
  });

  it('a title and body that render empty go out with the rule’s name', async () => {
    r = rig(pool(), Date.UTC(2026, 6, 1, 10));
    const rule = await r.store.createRule('home1', validateRuleSpec(leakRule('{{ event.params.where }}', '{{ event.params.where }}')));
    r.hubs.event('home1-hub', 'bath-leak', 'leak', { where: '' });
    await r.settle();
    expect(r.pushes.map((p) => [p.notification.title, p.notification.body])).toEqual([['Water leak', 'Water leak']]);
    expect(r.engine.status(rule.id, rule.version).stats.lastError).toBeNull();
  });

  it('a title of emoji past the limit is cut between code points, with no lone surrogate', async () => {
    r = rig(pool(), Date.UTC(2026, 6, 1, 10));
    // "Leak: " is 6 code units: a cut at 199 units would fall between the halves of the 97th drop
    await r.store.createRule('home1', validateRuleSpec(leakRule('Leak: {{ event.params.msg }}', '{{ event.params.msg }}')));
    r.hubs.event('home1-hub', 'bath-leak', 'leak', { msg: EMOJI });
    await r.settle();
    expect(r.pushes).toHaveLength(1);
    const { title, body } = r.pushes[0]!.notification;
    expect(title).toBe(`Leak: ${'💧'.repeat(96)}…`);
    expect(LONE_SURROGATE.test(title)).toBe(false);
    expect(body).toBe(EMOJI); // 1,024 code units: within the body's 2,000
  });
});
