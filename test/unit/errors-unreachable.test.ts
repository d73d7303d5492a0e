/**
 * A backend away is `unavailable` (503), told apart from `internal` (500, a bug): the socket
 * errors and ioredis' own messages of a Redis that is down or hung, directly or as a cause.
 */
import { describe, expect, it } from 'vitest';
import { asTierError, isUnreachable, TierError } from '../../src/errors.js';

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });
const named = (message: string, name: string) => Object.assign(new Error(message), { name });

describe('asTierError', () => {
  it('makes a backend away unavailable: sockets refused or reset, ioredis down or hung, and anything caused by one', () => {
    const away = [
      withCode('connect ECONNREFUSED 127.0.0.1:6379', 'ECONNREFUSED'),
      withCode('read ECONNRESET', 'ECONNRESET'),
      new Error('Connection is closed.'),
      new Error('Command timed out'),
      new Error("Stream isn't writeable and enableOfflineQueue options is false"),
      named('Reached the max retries per request limit (which is 0). Refer to "maxRetriesPerRequest" option for details.', 'MaxRetriesPerRequestError'),
      new TierError('unavailable', 'bus disconnected'),
      new TierError('internal', 'nats request failed', { cause: withCode('write EPIPE', 'EPIPE') }),
      new Error('wrapped', { cause: new Error('Connection is closed.') }),
      // Redis answering, but refusing for now (review "logs": each was a 500 and an unsampled error line)
      named("OOM command not allowed when used memory > 'maxmemory'.", 'ReplyError'),
      named("READONLY You can't write against a read only replica.", 'ReplyError'),
      named('LOADING Redis is loading the dataset in memory', 'ReplyError'),
      named('MISCONF Redis is configured to save RDB snapshots, but it is currently not able to persist on disk.', 'ReplyError'),
      named('BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.', 'ReplyError'),
      named('CLUSTERDOWN The cluster is down', 'ReplyError'),
    ];
    for (const err of away) {
      expect(isUnreachable(err), err.message).toBe(true);
      expect(asTierError(err).code, err.message).toBe('unavailable');
    }
  });

  it('leaves a bug internal and any other code as it is', () => {
    const replies = ['WRONGTYPE Operation against a key holding the wrong kind of value', 'BUSYGROUP Consumer Group name already exists', 'NOAUTH Authentication required.', 'ERR unknown command'].map((m) => named(m, 'ReplyError'));
    for (const err of [new TypeError("Cannot read properties of undefined (reading 'x')"), new Error('disk full'), new TierError('internal', 'no outcome'), 'a string', ...replies, new Error('OOM in a message of another library')]) {
      expect(isUnreachable(err)).toBe(false);
      expect(asTierError(err).code).toBe('internal');
    }
    const offline = new TierError('hub_offline');
    expect(asTierError(offline)).toBe(offline);
    expect(asTierError(new TierError('command_timeout', 'slow', { cause: withCode('x', 'ETIMEDOUT') })).code).toBe('command_timeout');
  });
});
