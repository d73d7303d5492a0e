import { describe, expect, it } from 'vitest';
import { ErrorCodes, type ErrorCode } from '../../proto/errors.js';
import { CommandError, TierError } from '../../src/errors.js';
import { errorReply } from '../../src/transport/http.js';

/** The HTTP answer of an error: the code's status and body, and when a temporary 500 or 503 may be tried again. */
describe('errorReply', () => {
  it('tells a caller of a backend away (503 unavailable, or a temporary 500) to come back in 1 to 5 s, spread', () => {
    for (const [code, status] of [['unavailable', 503], ['internal', 500]] as const) {
      const waits = new Set<string>();
      for (let i = 0; i < 200; i++) {
        const reply = errorReply(new TierError(code, 'command failed on the bus'));
        expect(reply.status).toBe(status);
        waits.add(reply.headers!['retry-after']!);
      }
      expect([...waits].every((w) => /^[1-5]$/.test(w)), code).toBe(true);
      // spread, so that every caller of a node that met the same outage does not come back at once
      expect(waits.size, code).toBeGreaterThan(1);
    }
  });

  it('tells a caller of a 503 (busy, draining, a session closing) to come back in a second', () => {
    for (const code of ['busy', 'draining', 'session_closed'] as const) {
      expect(errorReply(new TierError(code))).toMatchObject({ status: 503, headers: { 'retry-after': '1' } });
    }
  });

  it('says `sent: false` of a session_closed whose command the session never sent to its hub (safe to send again), nothing of one that may have run', () => {
    expect(errorReply(new CommandError('session_closed', 'the session is closing', { unsent: true })).body).toMatchObject({ code: 'session_closed', sent: false });
    expect(errorReply(new CommandError('session_closed', 'the node moved the hub away before it answered', { hubMoving: true })).body).not.toHaveProperty('sent');
  });

  it('a 429 says when the limit lets the caller in again, a second where it cannot say', () => {
    expect(errorReply(new TierError('rate_limited', 'x', { retryAfterMs: 9_200 })).headers).toEqual({ 'retry-after': '10' });
    expect(errorReply(new TierError('rate_limited')).headers).toEqual({ 'retry-after': '1' });
  });

  it('sends no Retry-After with any other code', () => {
    const others = (Object.keys(ErrorCodes) as ErrorCode[]).filter((c) => ![429, 500, 503].includes(ErrorCodes[c].http));
    expect(others).toContain('hub_offline');
    for (const code of others) expect(errorReply(new TierError(code)).headers, code).toBeUndefined();
  });
});
