/**
 * A scene's commands sent with at most a few in flight per hub, the rest queued in the scene's order.
 * A hub refuses `busy` past its own bound (TIER_HUB_MAX_COMMANDS, 32, shared with apps and desired
 * state), and one scene may hold 50 commands to one hub: sent all at once, some were always refused.
 */

/** In flight per hub for one scene run: a quarter of the hub's default bound, the rest left to apps and desired state. */
export const SCENE_COMMANDS_PER_HUB = 8;

/**
 * Runs `run` on every item, at most `width` at once per `item.hub`, each hub's items started in their
 * order; hubs do not wait for each other. One result per item, in the items' order; never rejects.
 * `unsent(err)`: when it returns a reason, the hub's items not started yet fail with it, unsent
 * (a hub found offline: each would wait for it and fail the same way, one window after the other).
 */
export async function settleByHub<T extends { readonly hub: string }, R>(
  items: readonly T[],
  width: number,
  run: (item: T) => Promise<R>,
  unsent?: (err: unknown) => unknown,
): Promise<PromiseSettledResult<R>[]> {
  const results = new Array<PromiseSettledResult<R>>(items.length);
  const lanes = new Map<string, number[]>();
  items.forEach((item, i) => {
    const lane = lanes.get(item.hub);
    if (lane) lane.push(i);
    else lanes.set(item.hub, [i]);
  });
  const workers: Promise<void>[] = [];
  for (const lane of lanes.values()) {
    let next = 0;
    let stop: { reason: unknown } | undefined;
    const work = async (): Promise<void> => {
      while (next < lane.length) {
        const i = lane[next++]!;
        if (stop) {
          results[i] = { status: 'rejected', reason: stop.reason };
          continue;
        }
        try {
          results[i] = { status: 'fulfilled', value: await run(items[i]!) };
        } catch (err) {
          results[i] = { status: 'rejected', reason: err };
          const reason = unsent?.(err);
          if (reason !== undefined) stop ??= { reason };
        }
      }
    };
    for (let w = 0; w < Math.min(Math.max(1, width), lane.length); w++) workers.push(work());
  }
  await Promise.all(workers);
  return results;
}
