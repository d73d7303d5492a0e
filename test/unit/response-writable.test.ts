/** A uWS response as a Writable: a write the socket does not take waits for its drain; a client gone fails the rest; a failure cuts the connection. */
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { responseWritable } from '../../src/transport/response-writable.js';
import type { HttpResponse } from '../../src/transport/uws.js';

function fakeResponse(takes: () => boolean) {
  const calls: string[] = [];
  const handlers: { writable?: () => boolean; aborted?: () => void } = {};
  const res = {
    cork: (f: () => void) => f(),
    write: (chunk: Buffer) => (calls.push(`write ${chunk.toString()}`), takes()),
    end: () => calls.push('end'),
    close: () => calls.push('close'),
    onWritable: (f: () => boolean) => (handlers.writable = f),
    onAborted: (f: () => void) => (handlers.aborted = f),
  };
  return { res: res as unknown as HttpResponse, calls, handlers };
}

describe('responseWritable', () => {
  it('holds the next write until the socket drains, then ends the response', async () => {
    let full = true;
    const { res, calls, handlers } = fakeResponse(() => !full);
    const out = responseWritable(res);
    out.write('a');
    out.write('b');
    out.end('c');
    await new Promise((r) => setImmediate(r));
    // the first write was not taken at once: the rest wait
    expect(calls).toEqual(['write a']);
    full = false;
    handlers.writable!();
    await once(out, 'finish');
    expect(calls).toEqual(['write a', 'write b', 'write c', 'end']);
  });

  it('chunks written in one turn go out in one cork: not a send per line of a backup', async () => {
    let corks = 0;
    const { res, calls } = fakeResponse(() => true);
    const cork = res.cork.bind(res);
    (res as unknown as { cork: (f: () => void) => void }).cork = (f) => (corks++, cork(f));
    const out = responseWritable(res);
    for (let i = 0; i < 100; i++) out.write(String(i));
    out.end();
    await once(out, 'finish');
    expect(calls.filter((c) => c.startsWith('write'))).toHaveLength(100);
    // the first line alone, the 99 buffered meanwhile together, then the end
    expect(corks).toBe(3);
  });

  it('a client gone fails the write waiting and cuts nothing more', async () => {
    const { res, calls, handlers } = fakeResponse(() => false);
    const out = responseWritable(res);
    const failed = once(out, 'error');
    out.write('a');
    out.write('b');
    await new Promise((r) => setImmediate(r));
    handlers.aborted!();
    const [err] = await failed;
    expect((err as Error).message).toMatch(/closed the connection/);
    expect(calls).toEqual(['write a']);
  });

  it('destroyed with an error before its end: the connection is closed, so a part is not taken for the whole', () => {
    const { res, calls } = fakeResponse(() => true);
    const out = responseWritable(res);
    out.on('error', () => {});
    out.write('a');
    out.destroy(new Error('store read failed'));
    expect(calls).toEqual(['write a', 'close']);
  });
});
