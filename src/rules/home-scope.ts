/**
 * The home boundary at run time. The API checks that every hub a rule or scene names is in its
 * home when it is written; this covers hubs moved to another home since: their state is not read
 * and commands to them fail with `forbidden`.
 *
 * Each check asks the node's registry lookup (`homeOfHub`, `HubRegistry.lookup`): in cluster mode
 * the registry is a CachingHubRegistry (30 s), in the embedded mode an LMDB read, as cheap as a
 * cache. Without `homeOfHub` every hub counts as in the home.
 */
import type { Attrs } from '../../proto/frames.js';
import { TierError } from '../errors.js';
import { deviceKey, type DeviceRef, type Rule } from './model.js';

export class HomeScope {
  constructor(
    /** reported attributes of these devices, by `deviceKey(hub, device)`; unknown devices left out */
    private readonly stateOf: (refs: readonly DeviceRef[], spent?: { ms: number }) => Promise<Record<string, Attrs>>,
    private readonly homeOfHub?: (hubId: string) => Promise<string | null>,
  ) {}

  async contains(hub: string, homeId: string): Promise<boolean> {
    return this.homeOfHub === undefined || (await this.homeOfHub(hub)) === homeId;
  }

  async require(hub: string, homeId: string): Promise<void> {
    if (!(await this.contains(hub, homeId))) throw new TierError('forbidden', `hub ${hub} is not in home ${homeId}`);
  }

  /** Reported state of the devices `rules` reference, those of hubs in `homeId` only; `spent.ms` is added the read's main-thread time. */
  async state(homeId: string, rules: readonly Rule[], spent?: { ms: number }): Promise<Record<string, Attrs>> {
    const refs = new Map<string, DeviceRef>();
    for (const r of rules) {
      for (const alias in r.devices) {
        if (!Object.hasOwn(r.devices, alias)) continue;
        const ref = r.devices[alias]!;
        refs.set(deviceKey(ref.hub, ref.device), ref);
      }
    }
    if (refs.size === 0) return {};
    let allowed = [...refs.values()];
    if (this.homeOfHub !== undefined) {
      // one lookup per hub, however many of its devices the rules name
      const hubs = [...new Set(allowed.map((ref) => ref.hub))];
      const inHome = await Promise.all(hubs.map((hub) => this.contains(hub, homeId)));
      const outside = new Set(hubs.filter((_, i) => !inHome[i]));
      allowed = allowed.filter((ref) => !outside.has(ref.hub));
    }
    return allowed.length === 0 ? {} : this.stateOf(allowed, spent);
  }
}
