/**
 * This node's liveness in the directory: refreshed every ttl/3 (its hubs' entries expire if the
 * process stops), and at each refresh the `offline` of hubs whose nodes lapsed published
 * (src/actors/offline-sweep.ts). Started before the node listens and before its first refresh:
 * its first sweep takes what an earlier process of its id left, once that id's liveness lapsed
 * (never a session of this process, nor of another node given the same NODE_ID by mistake).
 */
import { OfflineSweep, type OfflineSweepDeps } from '../actors/offline-sweep.js';
import type { Config } from '../config/config.js';

/**
 * One refresh: the node's liveness renewed, its hubs said online again if it was taken for dead
 * (`back`) or once more at the refresh after that (`again`), then the sweep of lapsed nodes.
 */
export function refreshOnce(deps: Pick<OfflineSweepDeps, 'directory' | 'nodeId' | 'log'>, sweep: OfflineSweep): Promise<unknown> {
  const { directory, nodeId, log } = deps;
  const swept = (err: unknown) => log.warn({ err }, 'hubs of lapsed nodes not looked for; tried again at the next refresh');
  return directory
    .refreshNode(nodeId)
    .then((taken) => (taken ? sweep.back() : sweep.again()), (err: unknown) => log.warn({ err }, 'directory refresh failed'))
    .then(() => sweep.sweep())
    .catch(swept);
}

/** Answers the function that stops it. */
export async function keepNodeAlive(deps: OfflineSweepDeps, config: Pick<Config, 'directoryTtlMs'>): Promise<() => void> {
  const { directory, nodeId, log } = deps;
  const sweep = new OfflineSweep(deps);
  const swept = (err: unknown) => log.warn({ err }, 'hubs of lapsed nodes not looked for; tried again at the next refresh');
  const refresh = setInterval(() => void refreshOnce(deps, sweep), Math.floor(config.directoryTtlMs / 3));
  refresh.unref();
  await sweep.sweep(true).catch(swept);
  // Redis lost right here (a managed failover during a rollout) ended the start with a bare stack
  // (review cloud): the refresh every ttl/3 tries again, and a hub's claim refreshes it too
  await directory.refreshNode(nodeId).catch((err: unknown) => log.warn({ err }, 'directory refresh failed at start; tried again at the next refresh'));
  return () => clearInterval(refresh);
}
