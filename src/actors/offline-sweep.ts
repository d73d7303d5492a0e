/**
 * The hubs of a node that died: no session closed there to publish their `offline`, so apps showed
 * them online until they came back, and rules on `offline` never fired (an app team's review,
 * 2026-12-06). At each liveness refresh a node takes the sessions of nodes whose liveness lapsed
 * (`Directory.takeOrphans`: each to one node) and publishes `offline` for each, reason `1006` (the
 * socket ended without a close), under the dead session's epoch: should a later session of the hub
 * have published meanwhile, the history drops it as stale. At start it takes what an earlier process
 * of its own id left, once that id's liveness lapsed; restarted within the ttl (the id never
 * lapsed), at its fifth refresh (`leftovers`).
 */
import type { AppEventMessage } from '../../proto/app.js';
import type { Logger } from '../log/logger.js';
import type { Directory, OrphanSession } from '../ports/directory/directory.js';
import type { HubPlacement } from '../ports/hub-registry/hub-registry.js';

/** what the socket of a node that died ended with, as its hubs and apps saw it */
const ABNORMAL_CLOSE = '1006';

export interface OfflineSweepDeps {
  directory: Directory;
  nodeId: string;
  /** each hub's home (null: deleted meanwhile, nothing to say) */
  placements(hubIds: readonly string[]): Promise<Array<HubPlacement | null>>;
  publishEvent(event: AppEventMessage, epoch: number): void;
  /** the sessions this node holds open now */
  held(): Array<{ hubId: string; homeId: string; epoch: number }>;
  log: Logger;
}

export class OfflineSweep {
  private running = false;
  /** `back` said the hubs online: once more at the next refresh (see `back`) */
  private sayAgain = false;
  /** an earlier process's leftovers were looked for (`leftovers`) */
  private leftoversTaken = false;
  /** leftovers released and not said yet (the registry was away) */
  private unsaid: OrphanSession[] = [];

  constructor(private readonly deps: OfflineSweepDeps) {}

  /** Publishes the `offline` of every session handed over; answers how many. One sweep at a time. */
  async sweep(own = false): Promise<number> {
    if (this.running) return 0;
    this.running = true;
    try {
      const { directory, nodeId, log } = this.deps;
      const orphans = await directory.takeOrphans(nodeId, own);
      if (orphans.length === 0) return 0;
      const homes = await this.deps.placements(orphans.map((o) => o.hubId)).catch(async (err: unknown) => {
        // taken and not said: listed again under their node, for the next sweep (here or elsewhere)
        for (const node of new Set(orphans.map((o) => o.node))) await directory.relist(node, orphans.filter((o) => o.node === node)).catch(() => {});
        throw err;
      });
      this.sayOffline(orphans, homes);
      log.warn({ hubs: orphans.length, nodes: [...new Set(orphans.map((o) => o.node))] }, 'hubs of nodes that stopped without closing their sessions: offline published');
      return orphans.length;
    } finally {
      this.running = false;
    }
  }

  /**
   * Once per process, as soon as the directory can tell: the sessions an earlier process of this
   * node id left listed (it died and this one started within the ttl, so the id never lapsed),
   * released and said offline; their hubs read online for good before (review "presence").
   */
  async leftovers(): Promise<number> {
    const { directory, nodeId, log } = this.deps;
    if (this.running || directory.takeOwnLeftovers === undefined) return 0;
    if (this.leftoversTaken && this.unsaid.length === 0) return 0;
    this.running = true;
    try {
      if (!this.leftoversTaken) {
        const taken = await directory.takeOwnLeftovers(nodeId, new Set(this.deps.held().map((h) => h.hubId)));
        if (taken === null) return 0;
        this.leftoversTaken = true;
        this.unsaid = taken;
      }
      const unsaid = this.unsaid;
      if (unsaid.length === 0) return 0;
      // released already: with the registry away they are kept here and said at a later refresh (review diff18)
      const homes = await this.deps.placements(unsaid.map((o) => o.hubId));
      this.unsaid = [];
      this.sayOffline(unsaid, homes);
      log.warn({ hubs: unsaid.length }, 'hubs an earlier process of this node id left listed (it stopped without closing their sessions): released, offline published');
      return unsaid.length;
    } finally {
      this.running = false;
    }
  }

  private sayOffline(orphans: readonly OrphanSession[], homes: ReadonlyArray<HubPlacement | null>): void {
    const ts = Date.now();
    orphans.forEach((o, i) => {
      const home = homes[i]?.homeId;
      if (home !== undefined) this.deps.publishEvent({ op: 'evt', kind: 'offline', home, hub: o.hubId, reason: ABNORMAL_CLOSE, ts }, o.epoch);
    });
  }

  /**
   * This node was seen dead (its loop stalled past the ttl) and another said its hubs offline,
   * though their sessions stayed open here: they are listed again and said online, under their
   * own epochs, after that offline (a review of this sweep, 2026-12-06: such hubs stayed offline
   * for apps and rules while they reported, and the node's own death later would have gone unsaid).
   */
  async back(): Promise<number> {
    const held = this.deps.held();
    await this.deps.directory.relist(this.deps.nodeId, held);
    this.sayOnline(held);
    // the sweep that took them may publish its offline after this online (its registry read slow):
    // said once more at the next refresh (until then the hubs could stay offline: a race review)
    this.sayAgain = true;
    this.deps.log.warn({ hubs: held.length }, 'this node was taken for dead (a stall past the directory ttl) and its hubs said offline: said online again');
    return held.length;
  }

  /** At a refresh that found nothing taken: the second `online` of a `back` before it, else nothing. */
  again(): number {
    if (!this.sayAgain) return 0;
    this.sayAgain = false;
    const held = this.deps.held();
    this.sayOnline(held);
    return held.length;
  }

  private sayOnline(held: Array<{ hubId: string; homeId: string; epoch: number }>): void {
    const ts = Date.now();
    for (const s of held) this.deps.publishEvent({ op: 'evt', kind: 'online', home: s.homeId, hub: s.hubId, node: this.deps.nodeId, ts }, s.epoch);
  }
}
