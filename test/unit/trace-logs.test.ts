import { trace } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { Actor, type ActorSystem } from '../../src/actors/actor.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { addLogFields, createLogger } from '../../src/log/logger.js';
import { inSpan, outsideSpans, spanStorageOn, traceFields } from '../../src/trace/active-span.js';
import { SpanKind, tracing } from '../../src/trace/tracing.js';
import { startTracingForTest } from '../helpers/tracing-on.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const sampled = trace.wrapSpanContext({ traceId: TRACE, spanId: '00f067aa0ba902b7', traceFlags: 1 });
const other = trace.wrapSpanContext({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 });
const unsampled = trace.wrapSpanContext({ traceId: '11111111111111111111111111111111', spanId: '2222222222222222', traceFlags: 0 });

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('info', { node: 'n1' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { lines, log };
}

describe('trace ids on log lines (the mixin installed once tracing is on)', () => {
  it('every line written while a sampled span is active names it, in children made before and after, across awaits', async () => {
    const { lines, log } = capture();
    const before = log.child({ part: 'rules' });
    addLogFields(log, traceFields);
    log.info('outside');
    await inSpan(sampled, async () => {
      before.info('in a child made before');
      await new Promise((r) => setTimeout(r, 1));
      log.child({ hubId: 'h1' }).warn('after an await, in a child made after');
    });
    log.info('outside again');
    const ids = { traceId: TRACE, spanId: '00f067aa0ba902b7' };
    expect(lines.map((l) => [l.msg, l.traceId, l.spanId])).toEqual([
      ['outside', undefined, undefined],
      ['in a child made before', ids.traceId, ids.spanId],
      ['after an await, in a child made after', ids.traceId, ids.spanId],
      ['outside again', undefined, undefined],
    ]);
    expect(lines[1]).toMatchObject({ part: 'rules', node: 'n1' });
  });

  it("Node's async hooks are on only while a sampled span is open: off at the next check phase after the last ends, on again for the next", async () => {
    const { lines, log } = capture();
    addLogFields(log, traceFields);
    const on = await startTracingForTest();
    const immediate = () => new Promise((r) => setImmediate(r));
    try {
      const first = tracing!.start('first', SpanKind.SERVER, undefined);
      await inSpan(first, async () => {
        await immediate();
        await immediate();
        log.info('open, after two check phases');
      });
      expect(spanStorageOn()).toBe(true);
      first.end();
      await immediate();
      await immediate();
      expect(spanStorageOn()).toBe(false);
      log.info('none open');
      const second = tracing!.start('second', SpanKind.SERVER, undefined);
      inSpan(second, () => log.info('the next'));
      expect(spanStorageOn()).toBe(true);
      second.end();
      expect(lines.map((l) => [l.msg, l.spanId])).toEqual([
        ['open, after two check phases', first.spanContext().spanId],
        ['none open', undefined],
        ['the next', second.spanContext().spanId],
      ]);
    } finally {
      await on.stop();
    }
  });

  it('an unsampled span names no trace, not even the sampled one around it; outsideSpans leaves it too', () => {
    const { lines, log } = capture();
    addLogFields(log, traceFields);
    inSpan(sampled, () => {
      inSpan(unsampled, () => log.info('unsampled'));
      outsideSpans(() => log.info('outside'));
      inSpan(other, () => log.info('nested'));
      log.info({ traceId: 'given' }, 'own field wins');
    });
    expect(lines.map((l) => [l.msg, l.traceId])).toEqual([
      ['unsampled', undefined],
      ['outside', undefined],
      ['nested', '0af7651916cd43dd8448eb211c80319c'],
      ['own field wins', 'given'],
    ]);
  });

  it('a logger without the mixin writes no trace fields inside a span (tracing off)', () => {
    const { lines, log } = capture();
    inSpan(sampled, () => log.info('plain'));
    expect(lines[0]!.traceId).toBeUndefined();
  });
});

/** An actor recording the trace id active in each message it handles; 'slow' awaits before it returns. */
class Recorder extends Actor<{ type: 'slow' | 'fast' }> {
  readonly seen: Array<string | undefined> = [];
  #fastSeen!: () => void;
  /** resolves once the 'fast' message was handled */
  readonly fastHandled = new Promise<void>((resolve) => (this.#fastSeen = resolve));
  constructor(
    readonly address: string,
    protected readonly system: ActorSystem,
  ) {
    super();
  }
  protected async receive(msg: { type: 'slow' | 'fast' }): Promise<void> {
    this.seen.push(traceFields().traceId);
    if (msg.type === 'slow') await new Promise((r) => setImmediate(r));
    else this.#fastSeen();
  }
  protected onStop(): void {}
}

describe('spans stay with their own work (tracing on)', () => {
  it("an actor's messages run outside the teller's span, and so do the messages drained after them", async () => {
    const { stop } = await startTracingForTest();
    try {
      const wheel = new TimerWheel();
      const system: ActorSystem = { timers: wheel, log: createLogger('silent'), mailboxSize: 8 };
      const actor = new Recorder('rec', system);
      inSpan(sampled, () => {
        actor.tell({ type: 'slow' });
        actor.tell({ type: 'fast' });
      });
      await actor.fastHandled;
      expect(actor.seen).toEqual([undefined, undefined]);
      wheel.close();
    } finally {
      await stop();
    }
  });

  it("the timer wheel's interval, started inside a span, fires outside it", async () => {
    const { stop } = await startTracingForTest();
    try {
      const wheel = new TimerWheel({ tickMs: 1 });
      const fired = new Promise<string | undefined>((resolve) => {
        inSpan(sampled, () => wheel.schedule(1, { onTimer: () => resolve(traceFields().traceId) }, 0));
      });
      expect(await fired).toBeUndefined();
      wheel.close();
    } finally {
      await stop();
    }
  });
});
