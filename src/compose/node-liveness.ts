/**
 * This node's liveness in the directory: refreshed every ttl/3 (its hubs' entries expire if the
 * process stops), and at each refresh the `offline` of hubs whose nodes lapsed published
 * (src/actors/offline-sweep.ts). Started before the node listens and before its first refresh:
 * its first sweep takes what an earlier process of its id left, once that id's liveness lapsed;
 * restarted within the ttl, its fifth refresh does (`OfflineSweep.leftovers`): never a session of
 * this process, nor of another live process given the same NODE_ID by mistake.
 */
import { setClusterClockOffset } from '../actors/cluster-clock.js';
import { OfflineSweep, type OfflineSweepDeps } from '../actors/offline-sweep.js';
import type { Config } from '../config/config.js';

/**
 * One refresh: the node's liveness renewed, its hubs said online again if it was taken for dead
 * (`back`) or once more at the refresh after that (`again`), then the sweep of lapsed nodes.
 */
export function refreshOnce(deps: Pick<OfflineSweepDeps, 'directory' | 'nodeId' | 'log'>, sweep: OfflineSweep, sharedId = new SharedIdWatch()): Promise<unknown> {
  const { directory, nodeId, log } = deps;
  const swept = (err: unknown) => log.warn({ err }, 'hubs of lapsed nodes not looked for; tried again at the next refresh');
  return directory
    .refreshNode(nodeId)
    .then((taken) => {
      sharedId.check(directory, nodeId, log);
      takeClock(directory);
      return taken ? sweep.back() : sweep.again();
    }, (err: unknown) => log.warn({ err }, 'directory refresh failed'))
    .then(() => sweep.sweep())
    .then(() => sweep.leftovers())
    .catch(swept);
}

/** The cluster's clock (commands' deadlines) from the refresh's reading of Redis's. */
function takeClock(directory: OfflineSweepDeps['directory']): void {
  const offset = directory.clockOffsetMs?.();
  if (offset !== undefined) setClusterClockOffset(offset);
}

/** Answers the function that stops it. */
export async function keepNodeAlive(deps: OfflineSweepDeps, config: Pick<Config, 'directoryTtlMs'>): Promise<() => void> {
  const { directory, nodeId, log } = deps;
  const sweep = new OfflineSweep(deps);
  const swept = (err: unknown) => log.warn({ err }, 'hubs of lapsed nodes not looked for; tried again at the next refresh');
  const sharedId = new SharedIdWatch();
  const refresh = setInterval(() => void refreshOnce(deps, sweep, sharedId), Math.floor(config.directoryTtlMs / 3));
  refresh.unref();
  await sweep.sweep(true).catch(swept);
  // Redis lost right here (a managed failover during a rollout) ended the start with a bare stack
  // (review cloud): the refresh every ttl/3 tries again, and a hub's claim refreshes it too
  await directory.refreshNode(nodeId).then(
    () => takeClock(directory),
    (err: unknown) => log.warn({ err }, 'directory refresh failed at start; tried again at the next refresh'),
  );
  return () => clearInterval(refresh);
}

/**
 * Says when another live process starts or stops refreshing this NODE_ID too: both then share the
 * id's per-node state, and one's hubs stay "online" after the other dies (tier_node_id_shared).
 */
export class SharedIdWatch {
  private was = false;

  check(directory: Pick<OfflineSweepDeps['directory'], 'nodeIdShared'>, nodeId: string, log: OfflineSweepDeps['log']): void {
    const now = directory.nodeIdShared?.() === true;
    if (now === this.was) return;
    this.was = now;
    if (now) log.error({ nodeId }, 'another live process refreshes this NODE_ID too: give each node its own (the pod name); until then they share per-node state in Redis');
    else log.info({ nodeId }, 'no other process refreshes this NODE_ID any more');
  }
}
