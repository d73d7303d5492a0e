/** What the node may ask of its index of hub sessions: look-ups, the count, iteration for drain. */
export interface SessionView<S> {
  readonly size: number;
  has(hubId: string): boolean;
  get(hubId: string): S | undefined;
  /** the sessions now held; a snapshot, so a session may release itself while the caller iterates */
  list(): S[];
}

/**
 * The node's index of live hub sessions: at most one per hub id. Only a session changes its own
 * entry: `claim` when it goes online (displacing an older session of the same hub, which the
 * claimant then tells to close), `release` when it closes, which removes the entry only while it
 * is still that session's. Everyone else reads.
 */
export class SessionIndex<S extends { readonly hubId: string }> implements SessionView<S> {
  private readonly byHub = new Map<string, S>();

  /** Makes `session` the one of its hub; returns the session it displaced, if any. */
  claim(session: S): S | undefined {
    const previous = this.byHub.get(session.hubId);
    this.byHub.set(session.hubId, session);
    return previous === session ? undefined : previous;
  }

  /** Removes `session`'s entry; false when another session of the hub has claimed it since. */
  release(session: S): boolean {
    if (this.byHub.get(session.hubId) !== session) return false;
    this.byHub.delete(session.hubId);
    return true;
  }

  get size(): number {
    return this.byHub.size;
  }

  has(hubId: string): boolean {
    return this.byHub.has(hubId);
  }

  get(hubId: string): S | undefined {
    return this.byHub.get(hubId);
  }

  list(): S[] {
    return [...this.byHub.values()];
  }
}
