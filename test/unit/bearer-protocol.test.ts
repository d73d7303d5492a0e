/**
 * A token as a WebSocket subprotocol: as it is when a subprotocol can hold it (a JWT), else
 * base64url-encoded as `bearer64.` (an admin token from `openssl rand -base64 32` has '/' and '=',
 * on which a WebSocket constructor throws with the token in its message), and back on the node.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { bearerProtocol, bearerToken, isBearerProtocol } from '../../proto/app.js';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYXJvbCJ9.c2lnbmF0dXJl-_';

describe('bearer subprotocol', () => {
  it('keeps a token a subprotocol can hold as it is', () => {
    expect(bearerProtocol(JWT)).toBe(`bearer.${JWT}`);
    expect(bearerToken(`bearer.${JWT}`)).toBe(JWT);
  });

  it.each(['q+8/ZmVkY2JhOTg3NjU0MzIxMC9hYmNkZWYrZ2hpams=', 'a b', 'ключ-токен', 'x,y', '"quoted"', '=', 'é'.repeat(3_000)])('encodes %j so a WebSocket accepts it, and decodes it back', (token) => {
    const protocol = bearerProtocol(token);
    expect(protocol.startsWith('bearer64.')).toBe(true);
    expect(isBearerProtocol(protocol)).toBe(true);
    expect(bearerToken(protocol)).toBe(token);
    // the constructor validates subprotocols before it connects: no throw
    const ws = new WebSocket('ws://127.0.0.1:1', ['hubtier.app.v1', protocol]);
    ws.on('error', () => {});
    ws.terminate();
  });

  it('answers undefined for a bearer64 that is not base64url, never throws', () => {
    for (const bad of ['bearer64.!!!', 'bearer64.a', 'bearer64.ab+c', 'bearer64.ab=']) expect(bearerToken(bad)).toBeUndefined();
    expect(bearerToken('bearer64.')).toBe('');
  });
});
