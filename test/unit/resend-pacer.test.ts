import { afterEach, expect, it, vi } from 'vitest';
import { Outbox } from '../../load/wire/outbox.js';
import { RESEND_BURST, RESEND_STEP, RESEND_STEP_MS, ResendPacer } from '../../load/wire/resend-pacer.js';

afterEach(() => {
  vi.useRealTimers();
});

/** An outbox of `n` frames whose bytes are their numbers, and a pacer recording what it sends. */
function rig(n: number) {
  const outbox = new Outbox();
  for (let i = 0; i < n; i++) void outbox.add((seq) => Buffer.from(String(seq))).acked.catch(() => {});
  const sent: number[] = [];
  const pacer = new ResendPacer(outbox, (bytes) => sent.push(Number(bytes.toString())));
  return { outbox, sent, pacer };
}

it('resends a backlog paced: a burst, then steps, in order, the frames added meanwhile in their turn (a backlog at once was closed 4004)', () => {
  vi.useFakeTimers();
  const { outbox, sent, pacer } = rig(250);
  expect(pacer.from(11)).toBe(240);
  expect(sent).toEqual(Array.from({ length: RESEND_BURST }, (_, i) => 11 + i));
  expect(pacer.running).toBe(true);
  void outbox.add((seq) => Buffer.from(String(seq))).acked.catch(() => {});
  vi.advanceTimersByTime(RESEND_STEP_MS);
  expect(sent).toHaveLength(RESEND_BURST + RESEND_STEP);
  vi.advanceTimersByTime(RESEND_STEP_MS * 10);
  expect(sent).toEqual(Array.from({ length: 241 }, (_, i) => 11 + i));
  expect(pacer.running).toBe(false);
});

it('a frame refused for now is sent again after a step with what follows it, once however often it is refused meanwhile (it wedged the hub)', () => {
  vi.useFakeTimers();
  const { outbox, sent, pacer } = rig(30);
  outbox.ack(20);
  pacer.refused(25);
  pacer.refused(26);
  pacer.refused(25);
  expect(sent).toEqual([]);
  vi.advanceTimersByTime(RESEND_STEP_MS);
  expect(sent).toEqual([25, 26, 27, 28, 29, 30]);
  // acknowledged already, or unknown: nothing to send
  pacer.refused(3);
  pacer.refused(99);
  vi.advanceTimersByTime(RESEND_STEP_MS * 4);
  expect(sent).toHaveLength(6);
});

it('stops with the socket: nothing more is sent', () => {
  vi.useFakeTimers();
  const { sent, pacer } = rig(300);
  pacer.from(1);
  pacer.stop();
  vi.advanceTimersByTime(RESEND_STEP_MS * 20);
  expect(sent).toHaveLength(RESEND_BURST);
  expect(pacer.running).toBe(false);
});
