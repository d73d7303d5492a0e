/**
 * The app sockets open on this node, by the user token they were opened with, so a revocation
 * closes them at once (4007 `unauthorized`, reason `token_revoked`) instead of letting them live
 * until they reconnect. The app gateway adds a socket at open and removes it at close; sockets of
 * the admin token are not kept (it is not revocable).
 */
import type { TokenRevocation } from '../../proto/subjects.js';
import { CloseCode } from '../../proto/errors.js';
import type { Principal } from '../auth/authenticator.js';
import { RevocationList } from '../auth/revocations.js';

/** What closing needs of a socket. */
export interface ClosableSocket {
  close(code: number, reason: string): void;
}

type UserPrincipal = Extract<Principal, { kind: 'user' }>;

export class OpenAppSockets {
  /** sub → its open sockets with the principal each was opened with */
  private readonly bySub = new Map<string, Map<ClosableSocket, UserPrincipal>>();

  get size(): number {
    let n = 0;
    for (const m of this.bySub.values()) n += m.size;
    return n;
  }

  opened(socket: ClosableSocket, principal: Principal): void {
    if (principal.kind !== 'user') return;
    let sockets = this.bySub.get(principal.sub);
    if (!sockets) this.bySub.set(principal.sub, (sockets = new Map()));
    sockets.set(socket, principal);
  }

  closed(socket: ClosableSocket, principal: Principal): void {
    if (principal.kind !== 'user') return;
    const sockets = this.bySub.get(principal.sub);
    sockets?.delete(socket);
    if (sockets?.size === 0) this.bySub.delete(principal.sub);
  }

  /** Closes every socket whose token `r` revokes; answers how many. */
  revoke(r: TokenRevocation): number {
    const candidates = r.sub !== undefined ? [this.bySub.get(r.sub)] : [...this.bySub.values()];
    let closed = 0;
    for (const sockets of candidates) {
      if (!sockets) continue;
      for (const [socket, p] of [...sockets]) {
        if (!RevocationList.covers(r, p)) continue;
        sockets.delete(socket);
        socket.close(CloseCode.unauthorized, 'token_revoked');
        closed++;
      }
    }
    for (const [sub, sockets] of this.bySub) if (sockets.size === 0) this.bySub.delete(sub);
    return closed;
  }
}
