import { describe, expect, it } from 'vitest';
import { FrameInbox } from '../../src/transport/frame-inbox.js';

const frame = (n: number) => new Uint8Array(n);

describe('FrameInbox', () => {
  it('tells the first frame of a turn apart, keeps the frames with their owners in arrival order, and starts empty again', () => {
    const inbox = new FrameInbox<string>(1_000);
    const a = frame(10);
    const b = frame(20);
    expect(inbox.push('hub-a', a, a.length)).toBe('first');
    expect(inbox.push('hub-b', b, b.length)).toBe('queued');
    expect(inbox.push('hub-a', null, 5)).toBe('queued');
    expect(inbox.take()).toEqual(['hub-a', a, 'hub-b', b, 'hub-a', null]);
    expect(inbox.take()).toEqual([]);
    expect(inbox.push('hub-c', a, a.length)).toBe('first');
  });

  it('says full once the bytes held pass the bound, and counts from zero after a take', () => {
    const inbox = new FrameInbox<string>(100);
    expect(inbox.push('h', frame(60), 60)).toBe('first');
    expect(inbox.push('h', frame(40), 40)).toBe('queued'); // 100: at the bound, not past it
    expect(inbox.push('h', frame(1), 1)).toBe('full');
    expect(inbox.take()).toHaveLength(6);
    expect(inbox.push('h', frame(90), 90)).toBe('first');
    expect(inbox.push('h', frame(10), 10)).toBe('queued');
  });

  it('counts the first frame of a turn toward the bound too', () => {
    const inbox = new FrameInbox<string>(100);
    expect(inbox.push('h', frame(150), 150)).toBe('first');
    expect(inbox.push('h', frame(1), 1)).toBe('full');
  });
});
