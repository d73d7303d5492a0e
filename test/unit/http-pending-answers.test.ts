/**
 * Large HTTP answers (64 KiB and up) are streamed as the socket takes them, their bytes held under
 * the node's ceiling (TIER_HTTP_PENDING_BYTES) until written or the client gone; past it they are
 * refused `503 busy`. Before 2026-12-06 `res.end` copied what the kernel did not take into uWS's
 * buffer for as long as the client did not read: eight clients asking for a 10 MB export and
 * reading nothing took a node from 172 MB to 946 MB. A response that takes bytes only when told.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pendingAnswers, requireAnswerRoom, send, type HttpReply } from '../../src/transport/http.js';
import type { HttpResponse } from '../../src/transport/uws.js';

/** A socket that takes `takes` bytes at once, then only what `drain` gives it. */
function slowSocket(takes: number) {
  let offset = 0;
  let writable: ((offset: number) => boolean) | null = null;
  let aborted: (() => void) | null = null;
  const out = { status: '', headers: {} as Record<string, string>, body: Buffer.alloc(0), ended: false, endCalls: 0 };
  let room = takes;
  const take = (chunk: Buffer, total: number): [boolean, boolean] => {
    const n = Math.min(room, chunk.length);
    out.body = Buffer.concat([out.body, chunk.subarray(0, n)]);
    offset += n;
    room -= n;
    out.ended = offset === total;
    return [n === chunk.length, out.ended];
  };
  const res = {
    cork(f: () => void) {
      f();
    },
    writeStatus(line: string) {
      out.status = line;
      return res;
    },
    writeHeader(name: string, value: string) {
      out.headers[name] = value;
      return res;
    },
    end(payload: string) {
      out.endCalls++;
      out.body = Buffer.from(payload);
      out.ended = true;
    },
    getWriteOffset: () => offset,
    tryEnd: (chunk: ArrayBuffer | Buffer, total: number) => take(Buffer.from(chunk as Buffer), total),
    onWritable(f: (offset: number) => boolean) {
      writable = f;
    },
    onAborted(f: () => void) {
      aborted = f;
    },
  };
  return {
    res: res as unknown as HttpResponse,
    out,
    /** the socket takes `n` more bytes */
    drain(n: number) {
      room += n;
      writable?.(offset);
    },
    abort() {
      aborted?.();
    },
  };
}

const big = (chars: number): HttpReply => ({ status: 200, text: 'x'.repeat(chars), contentType: 'application/json' });
const MAX = pendingAnswers.max;
/** what other suites of this process left held (a server closed with an answer unread): counted from */
let base = 0;
beforeEach(() => {
  base = pendingAnswers.bytes;
});
afterEach(() => {
  pendingAnswers.max = MAX;
});
const held = () => pendingAnswers.bytes - base;

describe('large answers and slow readers', () => {
  it('holds the bytes of an answer the socket has not taken, until it has taken all of it', () => {
    const s = slowSocket(100_000);
    send(s.res, { aborted: false }, big(1_000_000), undefined, 'req-1');
    expect(s.out.status).toBe('200 OK');
    expect(s.out.headers).toMatchObject({ 'content-type': 'application/json', 'x-request-id': 'req-1', 'cache-control': 'no-store' });
    expect(s.out.endCalls).toBe(0);
    expect(held()).toBe(1_000_000);
    s.drain(500_000);
    expect(held()).toBe(1_000_000);
    s.drain(400_000);
    expect(s.out.ended).toBe(true);
    expect(s.out.body.toString()).toBe('x'.repeat(1_000_000));
    expect(held()).toBe(0);
  });

  it('lets them go when the client leaves first', () => {
    const s = slowSocket(0);
    send(s.res, { aborted: false }, big(200_000));
    expect(held()).toBe(200_000);
    s.abort();
    s.abort();
    expect(held()).toBe(0);
  });

  it('refuses a large answer busy past the ceiling, holding nothing for it, and takes one again once room is made', () => {
    pendingAnswers.max = base + 1_500_000;
    const first = slowSocket(0);
    send(first.res, { aborted: false }, big(1_000_000));
    const second = slowSocket(0);
    const refused = pendingAnswers.refused;
    send(second.res, { aborted: false }, big(1_000_000), undefined, 'req-2');
    expect(second.out.status).toBe('503 Service Unavailable');
    expect(pendingAnswers.refused).toBe(refused + 1); // tier_http_answers_refused_total
    expect(second.out.headers).toMatchObject({ 'retry-after': '1', 'x-request-id': 'req-2' });
    expect(JSON.parse(second.out.body.toString())).toMatchObject({ ok: false, code: 'busy', message: expect.stringMatching(/^\d+ MB of answers wait for their readers on this node \(at most \d+ MB\): try again shortly$/) });
    expect(held()).toBe(1_000_000);
    first.abort();
    const third = slowSocket(0);
    send(third.res, { aborted: false }, big(1_000_000));
    expect(third.out.status).toBe('200 OK');
    third.abort();
    expect(held()).toBe(0);
  });

  it('refuses before building when there is no room for an answer as large as the last one', () => {
    pendingAnswers.max = base + 1_500_000;
    const first = slowSocket(0);
    send(first.res, { aborted: false }, big(1_000_000));
    // room for a small one, not for another of 1 MB: a route about to build one says busy first
    const refused = pendingAnswers.refused;
    expect(() => requireAnswerRoom()).toThrow(expect.objectContaining({ code: 'busy' }));
    expect(pendingAnswers.refused).toBe(refused + 1);
    first.abort();
    expect(() => requireAnswerRoom()).not.toThrow();
  });

  it('takes one answer larger than the ceiling while nothing else is held, and refuses nothing for it later', () => {
    expect(base).toBe(0);
    pendingAnswers.max = 500_000;
    const huge = slowSocket(0);
    send(huge.res, { aborted: false }, big(1_000_000));
    expect(huge.out.status).toBe('200 OK');
    const beside = slowSocket(0);
    send(beside.res, { aborted: false }, big(100_000));
    expect(beside.out.status).toBe('503 Service Unavailable');
    expect(() => requireAnswerRoom()).toThrow(expect.objectContaining({ code: 'busy' }));
    huge.abort();
    // the last answer asked for was larger than the ceiling: with nothing held there is room still
    expect(() => requireAnswerRoom()).not.toThrow();
    const after = slowSocket(0);
    send(after.res, { aborted: false }, big(100_000));
    expect(after.out.status).toBe('200 OK');
    after.abort();
    expect(held()).toBe(0);
  });

  it('tells the route once its answer is all written, or never will be', () => {
    const sent: string[] = [];
    const written = slowSocket(0);
    send(written.res, { aborted: false }, { ...big(100_000), onSent: () => sent.push('written') });
    expect(sent).toEqual([]);
    written.drain(100_000);
    const left = slowSocket(0);
    send(left.res, { aborted: false }, { ...big(100_000), onSent: () => sent.push('left') });
    left.abort();
    send(slowSocket(0).res, { aborted: true }, { status: 200, body: {}, onSent: () => sent.push('aborted before') });
    send(slowSocket(0).res, { aborted: false }, { status: 200, body: {}, onSent: () => sent.push('small') });
    pendingAnswers.max = base + 150_000;
    const holding = slowSocket(0);
    send(holding.res, { aborted: false }, big(100_000));
    send(slowSocket(0).res, { aborted: false }, { ...big(100_000), onSent: () => sent.push('refused') });
    holding.abort();
    expect(sent).toEqual(['written', 'left', 'aborted before', 'small', 'refused']);
    expect(held()).toBe(0);
  });

  it('writes a small answer with end and holds nothing', () => {
    const s = slowSocket(0);
    send(s.res, { aborted: false }, { status: 200, body: { ok: true } });
    expect(s.out.endCalls).toBe(1);
    expect(held()).toBe(0);
  });
});
