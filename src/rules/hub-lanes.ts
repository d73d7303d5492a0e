/**
 * A scene's commands sent with at most a few in flight per hub, the rest queued in the scene's order.
 * A hub refuses `busy` past its own bound (TIER_HUB_MAX_COMMANDS, 32, shared with apps and desired
 * state), and one scene may hold 50 commands to one hub: sent all at once, some were always refused.
 */
import { performance } from 'node:perf_hooks';

/** In flight per hub for one scene run: a quarter of the hub's default bound, the rest left to apps and desired state. */
export const SCENE_COMMANDS_PER_HUB = 8;

/** A scene run's commands in flight per hub, for a hub bound (TIER_HUB_MAX_COMMANDS) of `hubMaxCommands`: a quarter of it, 1 to 8. */
export function sceneCommandsPerHub(hubMaxCommands: number): number {
  return Math.max(1, Math.min(SCENE_COMMANDS_PER_HUB, Math.floor(hubMaxCommands / 4)));
}

/**
 * Runs `run` on every item, at most `width` at once per `item.hub`, each hub's items started in their
 * order; hubs do not wait for each other. One result per item, in the items' order; never rejects.
 * `judge(hub)` gives each hub a judge of its results as they come, each with when its item started
 * (`performance.now()`, ms): once it returns a reason, the hub's items not started yet fail with it,
 * unsent (a hub found offline, or answering nothing: each window would wait and fail alike in turn).
 */
export async function settleByHub<T extends { readonly hub: string }, R>(
  items: readonly T[],
  width: number,
  run: (item: T) => Promise<R>,
  judge?: (hub: string) => (result: PromiseSettledResult<R>, startedAt: number) => unknown,
): Promise<PromiseSettledResult<R>[]> {
  const results = new Array<PromiseSettledResult<R>>(items.length);
  const lanes = new Map<string, number[]>();
  items.forEach((item, i) => {
    const lane = lanes.get(item.hub);
    if (lane) lane.push(i);
    else lanes.set(item.hub, [i]);
  });
  const workers: Promise<void>[] = [];
  for (const [hub, lane] of lanes) {
    let next = 0;
    let stop: { reason: unknown } | undefined;
    const judged = judge?.(hub);
    const work = async (): Promise<void> => {
      while (next < lane.length) {
        const i = lane[next++]!;
        if (stop) {
          results[i] = { status: 'rejected', reason: stop.reason };
          continue;
        }
        const startedAt = performance.now();
        let result: PromiseSettledResult<R>;
        try {
          result = { status: 'fulfilled', value: await run(items[i]!) };
        } catch (err) {
          result = { status: 'rejected', reason: err };
        }
        results[i] = result;
        const reason = judged?.(result, startedAt);
        if (reason !== undefined) stop ??= { reason };
      }
    };
    for (let w = 0; w < Math.min(Math.max(1, width), lane.length); w++) workers.push(work());
  }
  await Promise.all(workers);
  return results;
}
