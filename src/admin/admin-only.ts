import type { AdminTokens } from '../auth/admin-tokens.js';
import { checkAdminToken, type GuessWatch } from '../auth/guess-limit.js';
import { AuthError } from '../errors.js';
import { peerAddress } from '../transport/client-address.js';
import { errorReply, send } from '../transport/http.js';
import type { HttpRequest, HttpResponse } from '../transport/uws.js';

/** true when the request carries the admin token; otherwise answers 401 (429 to an address past its wrong guesses) and returns false. */
export function adminOnly(res: HttpResponse, req: HttpRequest, tokens: AdminTokens, guesses: GuessWatch | undefined): boolean {
  const bearer = /^Bearer\s+(\S+)$/i.exec(req.getHeader('authorization'))?.[1];
  const verdict = checkAdminToken(tokens, bearer, peerAddress(res), 'debug', guesses);
  if (verdict.ok) return true;
  // the API's refusals, as the public port writes them (num, temporary; Retry-After from the lock)
  if (verdict.lockedMs > 0) {
    send(res, { aborted: false }, errorReply(new AuthError('rate_limited', `too many wrong admin tokens from this address: try again in ${Math.ceil(verdict.lockedMs / 1000)} s`, { retryAfterMs: verdict.lockedMs })));
    return false;
  }
  const reply = errorReply(new AuthError('unauthorized', 'Authorization: Bearer <ADMIN_TOKEN> is required'));
  send(res, { aborted: false }, { ...reply, headers: { ...reply.headers, 'www-authenticate': 'Bearer' } });
  return false;
}
