/**
 * The chaos run's check of old values after new ones: a value delivered after a larger one is
 * stale only when the hub last sent it before it first sent the larger one.
 */
import { describe, expect, it } from 'vitest';
import { SendOrder } from '../../load/chaos/send-order.js';

describe('SendOrder', () => {
  it('takes a value sent again after a reconnect for at least once, and an old session\'s value after the new session\'s for stale', () => {
    const order = new SendOrder();
    for (let n = 1; n <= 10; n++) order.sent('d', n);
    // 6..10 unacknowledged when the session ended: sent again on the next one, then 11 and 12
    for (let n = 6; n <= 10; n++) order.resent('d', n);
    order.sent('d', 11);
    order.sent('d', 12);
    // the old session published up to 10, the new one publishes 6 again: at least once
    expect(order.stale('d', 6, 10)).toBe(false);
    // the new session published 8 before 12: 8 after 12 can only be the old session's, late
    expect(order.stale('d', 8, 12)).toBe(true);
    expect(order.stale('d', 3, 11)).toBe(true);
    // devices are apart, and a value never sent decides nothing
    expect(order.stale('other', 3, 11)).toBe(false);
    expect(order.stale('d', 3, 99)).toBe(false);
  });
});
