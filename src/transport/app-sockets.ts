/**
 * The app sockets open on this node, by the user token they were opened with, so a revocation
 * closes them at once (4007 `unauthorized`, reason `token_revoked`) instead of letting them live
 * until they reconnect, and a draining node closes them all (4005 `draining`) so apps reconnect to
 * another node and recover from their positions instead of seeing their sockets die with the
 * process. The app gateway adds a socket at open and removes it at close.
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
  /** sockets of the admin token: never revoked, closed only by a drain */
  private readonly admin = new Set<ClosableSocket>();

  get size(): number {
    let n = this.admin.size;
    for (const m of this.bySub.values()) n += m.size;
    return n;
  }

  opened(socket: ClosableSocket, principal: Principal): void {
    if (principal.kind !== 'user') return void this.admin.add(socket);
    let sockets = this.bySub.get(principal.sub);
    if (!sockets) this.bySub.set(principal.sub, (sockets = new Map()));
    sockets.set(socket, principal);
  }

  closed(socket: ClosableSocket, principal: Principal): void {
    if (principal.kind !== 'user') return void this.admin.delete(socket);
    const sockets = this.bySub.get(principal.sub);
    sockets?.delete(socket);
    if (sockets?.size === 0) this.bySub.delete(principal.sub);
  }

  /** Closes every socket whose token `r` revokes or takes a home from (the app reconnects with the homes it keeps); answers how many. */
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

  /**
   * Closes every socket whose token `list` now refuses or takes a home from; answers how many. One
   * pass over the open sockets, whatever the number of revocations (a reconcile after missed notices).
   */
  closeRevoked(list: Pick<RevocationList, 'affects'>): number {
    let closed = 0;
    for (const [sub, sockets] of this.bySub) {
      for (const [socket, p] of [...sockets]) {
        if (!list.affects(p)) continue;
        sockets.delete(socket);
        socket.close(CloseCode.unauthorized, 'token_revoked');
        closed++;
      }
      if (sockets.size === 0) this.bySub.delete(sub);
    }
    return closed;
  }

  /** Closes every open socket (a node draining); answers how many. */
  closeAll(code: number, reason: string): number {
    const all = [...this.admin, ...[...this.bySub.values()].flatMap((m) => [...m.keys()])];
    this.admin.clear();
    this.bySub.clear();
    for (const socket of all) socket.close(code, reason);
    return all.length;
  }
}
