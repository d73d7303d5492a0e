/** Who holds a hub's session, as far as the directory knows. */
export interface HubLocation {
  node: string;
  /** increases at every new session of the hub, across all nodes, never reused */
  epoch: number;
  /** ms since the Unix epoch when this session claimed the hub */
  since: number;
}

/** What a claim returns: the new session's location, and whether it took the entry from another. */
export interface HubClaim extends HubLocation {
  /**
   * true when the entry named an earlier session (on any node, alive or not): that session may
   * never say `offline` (its release finds this claim), so a session that fails to open after
   * such a claim says it in its place
   */
  displaced: boolean;
}

/** A session its node held when its liveness lapsed, as `takeOrphans` hands it over. */
export interface OrphanSession {
  hubId: string;
  node: string;
  epoch: number;
}

/**
 * Which node holds which hub.
 *
 * - `claim` makes `node` the holder and returns a strictly larger epoch than any earlier claim of
 *   the hub (also after expiry or restart of the holder; epochs grow but need not be consecutive:
 *   Redis floors them by its clock). Two racing claims get different epochs; the larger one wins
 *   and the other holder must close (it learns it from the takeover message or from `holds`
 *   returning false). A claim also marks `node` alive, as `refreshNode` does, and says whether it
 *   displaced an entry (one left by a dead node counts: its session said nothing either).
 * - `release` removes the entry only if it still names that node and epoch (a late release of a
 *   taken-over session changes nothing). It resolves false when a later claim holds the entry:
 *   the session was taken over, whether or not it heard so (its hub is online elsewhere). One that
 *   rejects (the backend away) is made again by the directory at its next refreshes, where the
 *   backend outlives the process (Redis): the entry must not read online for as long as the node lives.
 * - Entries live as long as their node refreshes its liveness (`refreshNode`) within `ttlMs`;
 *   after that `lookup` answers null, as if the hub were offline. `holds` and `lookup` read the
 *   entry and the liveness separately (different Redis Cluster slots): not one atomic snapshot.
 * - `takeOrphans` hands over the sessions that nodes whose liveness lapsed (killed, frozen past the
 *   ttl) still held, each to exactly one caller, and only those whose entry still names that node
 *   and epoch (no later claim): their hubs went offline without their sessions saying so. With
 *   `own`, the caller's node id too, once lapsed (a node at start, before its first refresh, takes
 *   what an earlier process of its id left; while that id is alive, which another node given the
 *   same id by mistake would keep it, nothing). A node records a session at its claim and forgets it
 *   at its release, without waiting for either: a session claimed in the instant before its node
 *   dies may be missed.
 */
export interface Directory {
  claim(hubId: string, node: string, now?: number): Promise<HubClaim>;
  release(hubId: string, node: string, epoch: number): Promise<boolean>;
  lookup(hubId: string): Promise<HubLocation | null>;
  /** true while `node` holds `hubId` with exactly `epoch` */
  holds(hubId: string, node: string, epoch: number): Promise<boolean>;
  /**
   * Marks the node alive for another ttl; call every ttl/3. True when another node took this
   * node's sessions since its last refresh (`takeOrphans`: it was seen dead, a stall past the ttl,
   * and its hubs were said offline): the caller lists them again (`relist`) and says them online.
   */
  refreshNode(node: string): Promise<boolean>;
  takeOrphans(node: string, own?: boolean): Promise<OrphanSession[]>;
  /**
   * Records the node's sessions again: after `refreshNode` said they were taken, or sessions taken
   * from a dead node and not said (a sweep that failed), for the next `takeOrphans`; those a later
   * claim holds stay another's.
   */
  relist(node: string, sessions: ReadonlyArray<{ hubId: string; epoch: number }>): Promise<void>;
  /**
   * True while another live process refreshes this node id's liveness too (two processes given one
   * NODE_ID by mistake), as the last `refreshNode` calls found (held a few refreshes after the other
   * was last seen). Absent where one process holds the directory.
   */
  nodeIdShared?(): boolean;
  /** Redis's clock minus this process's (ms) as the last refresh read it; absent or undefined: not known (one process: none needed) */
  clockOffsetMs?(): number | undefined;
  /**
   * The sessions an earlier process of this node id left listed and no later claim took, released
   * (their entries deleted) and handed over once, for their `offline`: a process restarted within
   * the ttl (a container restarted in its pod) keeps its id alive, so `takeOrphans` never takes
   * them, and their hubs read online for good. Only those claimed before this process's first
   * claim and not in `open` (hubs it holds now); answers null while that cannot be told yet (fewer
   * than five refreshes, or another live process refreshes the id). Absent where the directory
   * lives and dies with the process (memory).
   */
  takeOwnLeftovers?(node: string, open: ReadonlySet<string>): Promise<OrphanSession[] | null>;
  close(): Promise<void>;
}
