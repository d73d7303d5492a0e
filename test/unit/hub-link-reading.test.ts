/**
 * A hub socket that reads nothing while frames wait for it (its firmware stuck, its heartbeats still
 * coming): the link says so at the second idle check that finds frames waiting and no drain since
 * the first. Until 2026-12-07 such a hub stayed online until the kernel's buffers and uWS's 256 KiB
 * filled (hours at a few commands a minute), every command to it timing out (review "slowreaders").
 */
import { describe, expect, it } from 'vitest';
import { UwsHubLink } from '../../src/transport/hub-gateway.js';
import { WriteBatch } from '../../src/transport/write-batch.js';

function link() {
  let buffered = 0;
  const ws = { getBufferedAmount: () => buffered } as never;
  const l = new UwsHubLink(ws, new WriteBatch(() => {}));
  return { l, buffer: (n: number) => (buffered = n) };
}

describe('UwsHubLink.readingStalled', () => {
  it('is true only when frames waited at two asks in a row with no drain between', () => {
    const { l, buffer } = link();
    expect(l.readingStalled()).toBe(false);
    buffer(10_000);
    expect(l.readingStalled()).toBe(false); // waiting now, not at the ask before
    expect(l.readingStalled()).toBe(true); // waiting at both, nothing read between
    // it read some (uWS drained), and more came: not stalled
    l.drained();
    expect(l.readingStalled()).toBe(false);
    expect(l.readingStalled()).toBe(true);
    // everything taken: not stalled however long
    buffer(0);
    expect(l.readingStalled()).toBe(false);
    expect(l.readingStalled()).toBe(false);
  });

  it('is false once the socket closed', () => {
    const { l, buffer } = link();
    buffer(10_000);
    l.readingStalled();
    l.open = false;
    expect(l.readingStalled()).toBe(false);
  });
});

describe('UwsHubLink.readingStalled, frames sent between the asks', () => {
  it('counts what uWS wrote within a send (no drain event) as read, and a send that only queued as not', async () => {
    let buffered = 0;
    let taken = 0;
    const ws = {
      getBufferedAmount: () => buffered,
      cork: (f: () => void) => f(),
      // uWS queues what the kernel does not take; `taken` bytes of its backlog leave as it sends
      send: (data: Uint8Array) => void (buffered = Math.max(0, buffered - taken) + data.byteLength + 2),
    } as never;
    const writes = { defer: (f: () => void) => f() } as never;
    const l = new UwsHubLink(ws, writes);
    buffered = 10_000;
    expect(l.readingStalled()).toBe(false);
    // the hub read 5,000 bytes of the backlog while a frame went out: not stalled
    taken = 5_000;
    l.send(new Uint8Array(100));
    expect(l.readingStalled()).toBe(false);
    // it read nothing while another went out: stalled at the next ask
    taken = 0;
    l.send(new Uint8Array(100));
    expect(l.readingStalled()).toBe(true);
  });
});
