/**
 * The app sockets open on this node, by the user token they were opened with, so a revocation
 * closes them at once (4007 `unauthorized`, reason `token_revoked`) instead of letting them live
 * until they reconnect, and a draining node closes them all (4005 `draining`) so apps reconnect to
 * another node and recover from their positions instead of seeing their sockets die with the
 * process. A revocation that takes some of a token's homes and leaves it others narrows its
 * sockets in place (`loseHomes`: their subscriptions to those homes end) instead of closing them.
 * The app gateway adds a socket at open and removes it at close.
 */
import type { TokenRevocation } from '../../proto/subjects.js';
import { CloseCode } from '../../proto/errors.js';
import type { Principal } from '../auth/authenticator.js';
import { RevocationList } from '../auth/revocations.js';

/** What closing needs of a socket. */
export interface ClosableSocket {
  close(code: number, reason: string): void;
  /** the token lost these homes and keeps others; absent: the socket is closed instead */
  loseHomes?(homes: readonly string[]): void;
}

type UserPrincipal = Extract<Principal, { kind: 'user' }>;

/** Sockets a revocation reached: closed, or narrowed to the homes their token keeps. */
export interface RevokedSockets {
  closed: number;
  narrowed: number;
}

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

  /** Closes every socket whose token `r` revokes, and narrows those it takes one home from of several. */
  revoke(r: TokenRevocation): RevokedSockets {
    const candidates = r.sub !== undefined ? [this.bySub.get(r.sub)] : [...this.bySub.values()];
    const out: RevokedSockets = { closed: 0, narrowed: 0 };
    for (const sockets of candidates) {
      if (!sockets) continue;
      for (const [socket, p] of [...sockets]) {
        if (RevocationList.covers(r, p)) this.apply(sockets, socket, p, r.home === undefined ? null : [r.home], out);
      }
    }
    for (const [sub, sockets] of this.bySub) if (sockets.size === 0) this.bySub.delete(sub);
    return out;
  }

  /**
   * Closes every socket whose token `list` now refuses, and narrows those it takes some homes from
   * (a reconcile after missed notices). One pass over the open sockets, whatever the number of revocations.
   */
  enforce(list: Pick<RevocationList, 'isRevoked' | 'revokedHomes'>): RevokedSockets {
    const out: RevokedSockets = { closed: 0, narrowed: 0 };
    for (const [sub, sockets] of this.bySub) {
      for (const [socket, p] of [...sockets]) {
        if (list.isRevoked(p)) this.apply(sockets, socket, p, null, out);
        else {
          const lost = list.revokedHomes(p);
          if (lost.length > 0) this.apply(sockets, socket, p, lost, out);
        }
      }
      if (sockets.size === 0) this.bySub.delete(sub);
    }
    return out;
  }

  /** `lost` null: the token is refused whole. A socket left with no home, or that cannot be narrowed, is closed. */
  private apply(sockets: Map<ClosableSocket, UserPrincipal>, socket: ClosableSocket, p: UserPrincipal, lost: readonly string[] | null, out: RevokedSockets): void {
    const kept = lost === null ? [] : [...p.homes].filter((h) => !lost.includes(h));
    if (kept.length > 0 && socket.loseHomes) {
      sockets.set(socket, { ...p, homes: new Set(kept) });
      socket.loseHomes(lost!);
      out.narrowed++;
      return;
    }
    sockets.delete(socket);
    socket.close(CloseCode.unauthorized, 'token_revoked');
    out.closed++;
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
