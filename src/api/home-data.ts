/**
 * A home's data as a whole, for its owner's rights under the GDPR (art. 15 and 20: a copy; art.
 * 17: erasure): what the tier keeps of a home is its hubs (records and shadows), its rules, scenes
 * and settings, and its stored events. `exportHome` gathers them in one document; `eraseHome`
 * deletes them. The audit trail stays: it records who did what, for accountability, and ages out
 * by itself (TIER_AUDIT_MAX_AGE_DAYS; README "A home's data").
 */
import type { Static } from '@sinclair/typebox';
import { TierError } from '../errors.js';
import type { EventHistory, HistoryEntry } from '../ports/history/history.js';
import { homePages } from '../ports/hub-registry/hub-registry.js';
import type { RuleStore } from '../ports/rule-store/rule-store.js';
import type { PushQueue } from '../ports/push-queue/push-queue.js';
import type { DeviceShadow, ShadowStore } from '../ports/shadow-store/shadow-store.js';
import { decodeValue } from '../protocol/codec.js';
import { DEFAULT_SETTINGS, type HomeSettings, type Rule, type Scene } from '../rules/model.js';
import type { FleetHub } from '../schemas/fleet.js';
import { MAX_HOME_HUBS, type Fleet } from './fleet.js';
import { mapInSlices, type Meter } from './sliced.js';

export interface HomeDataDeps {
  fleet: Fleet;
  rules: RuleStore;
  shadows: ShadowStore;
  /** absent when the node keeps no history (TIER_HISTORY_SIZE=0) */
  history: EventHistory | undefined;
  /** resolves once the events this node published so far are in the history (the hubs' `removed`) */
  eventsSettled: () => Promise<void>;
  /** the push notifications not yet delivered (and those a backend keeps after delivery) */
  push: Pick<PushQueue, 'removeHome'>;
  /** takes the home from every user token issued up to now, on every node; resolves with that instant (Unix seconds) once stored */
  revokeHome: (homeId: string) => Promise<number>;
  now?: () => number;
  /** hubs read per page of the home's index; every page is read, however many @default MAX_HOME_HUBS (1_000) */
  hubPage?: number;
}

export interface HomeExport {
  homeId: string;
  exportedAt: string;
  settings: HomeSettings;
  hubs: Array<Static<typeof FleetHub> & { devices: Record<string, DeviceShadow> }>;
  rules: Rule[];
  scenes: Scene[];
  /** the stored events still retained, oldest first; `epoch` and `offset` as apps see them */
  events: Array<{ epoch: string; offset: number; event: unknown }>;
}

export interface HomeErasure {
  homeId: string;
  /** user tokens issued up to then no longer grant the home, ISO 8601 */
  tokensRevokedBefore: string;
  hubs: string[];
  rules: number;
  scenes: number;
  settingsReset: boolean;
  /** push notifications removed from the queue (queued, retrying, failed, kept as delivered) */
  pushNotifications: number;
  /** entries of the home deleted from the services' event stream (cluster mode; 0 without one) */
  streamEntries: number;
}

/** Hubs deleted at once: each waits up to 2 s for its session to let go. */
const ERASE_PARALLEL = 16;

/** `meter`: the loop time its events' decoding took is added to it (the node's share an export takes). */
export async function exportHome(deps: HomeDataDeps, homeId: string, meter?: Meter): Promise<HomeExport> {
  const [hubs, rules, scenes, settings, events] = await Promise.all([
    hubsWithShadows(deps, homeId),
    deps.rules.listRules(homeId),
    deps.rules.listScenes(homeId),
    deps.rules.getSettings(homeId),
    deps.history ? retainedEvents(deps.history, homeId, meter) : [],
  ]);
  return { homeId, exportedAt: new Date((deps.now ?? Date.now)()).toISOString(), settings, hubs, rules, scenes, events };
}

/** Every hub of the home with its shadow, a page at a time (the shadows of a page read at once). */
async function hubsWithShadows(deps: HomeDataDeps, homeId: string): Promise<HomeExport['hubs']> {
  const out: HomeExport['hubs'] = [];
  for await (const page of hubPages(deps, homeId)) {
    out.push(...(await Promise.all(page.map(async (hub) => ({ ...hub, devices: await deps.shadows.load(hub.hubId) })))));
  }
  return out;
}

/**
 * Every hub of the home, page after page along the registry's cursor until a short page (until
 * 2026-12-06 one read, so hubs past the 1,000th were neither exported nor erased). Deleting a
 * page's hubs before reading the next moves no hub of the pages after it.
 */
function hubPages(deps: HomeDataDeps, homeId: string): AsyncGenerator<Array<Static<typeof FleetHub>>> {
  const size = Math.max(1, deps.hubPage ?? MAX_HOME_HUBS);
  return homePages(homeId, (after) => deps.fleet.homeHubs(homeId, after, size), size);
}

/**
 * Takes the home from its users' tokens first (so none adds a rule while the erasure runs; each
 * token keeps its other homes, and their app sockets are closed), deletes the home's rules and
 * scenes (so none runs while its hubs go), resets its settings, deletes every hub, however
 * many, a page at a time, as `DELETE /v1/admin/hubs/{hubId}` does (session closed, record and
 * shadow gone, the apps still subscribed told `removed`), then drops the home's stored events,
 * those `removed` included (in cluster mode from the services' stream too, which then gets an
 * `erased` entry), and its push notifications. A home with nothing left answers zeros (and is
 * revoked again): an erasure can be sent again.
 */
export async function eraseHome(deps: HomeDataDeps, homeId: string): Promise<HomeErasure> {
  const before = await deps.revokeHome(homeId);
  const [rules, scenes, settings] = await Promise.all([deps.rules.listRules(homeId), deps.rules.listScenes(homeId), deps.rules.getSettings(homeId)]);
  for (const rule of rules) await deps.rules.deleteRule(homeId, rule.id);
  for (const scene of scenes) await deps.rules.deleteScene(homeId, scene.id);
  const settingsReset = settings.timeZone !== DEFAULT_SETTINGS.timeZone;
  if (settingsReset) await deps.rules.putSettings(homeId, { ...DEFAULT_SETTINGS });
  const hubs: string[] = [];
  for await (const page of hubPages(deps, homeId)) {
    const ids = page.map((h) => h.hubId);
    for (let i = 0; i < ids.length; i += ERASE_PARALLEL) {
      await Promise.all(ids.slice(i, i + ERASE_PARALLEL).map((hubId) => deps.fleet.remove(hubId).catch(gone)));
    }
    hubs.push(...ids);
  }
  await deps.eventsSettled();
  await deps.history?.remove(homeId);
  // after its hubs' `removed`: the `erased` entry is the home's last in the services' stream
  const streamEntries = (await deps.history?.forget?.(homeId)) ?? 0;
  // last: a rule run that started before its rule went may have queued one meanwhile
  const pushNotifications = await deps.push.removeHome(homeId);
  return { homeId, tokensRevokedBefore: new Date(before * 1000).toISOString(), hubs, rules: rules.length, scenes: scenes.length, settingsReset, pushNotifications, streamEntries };
}

/** A hub deleted meanwhile by another request is as good as deleted here. */
function gone(err: unknown): void {
  if (!(err instanceof TierError && err.code === 'not_found')) throw err;
}

/** Events a read of the export asks for at once: a home's whole history in one read held a shared Redis 5 s at 1,000,000 (review "cluster-cost"). */
const EXPORT_PAGE = 5_000;

/**
 * The home's events still retained: a read from offset `s` succeeds for every `s` at or past the
 * oldest entry kept, so the oldest is found by halving with reads of one entry (about 10 for a
 * thousand events), and the events are then read a page at a time.
 */
async function retainedEvents(history: EventHistory, homeId: string, meter?: Meter): Promise<HomeExport['events']> {
  const pos = await history.position(homeId);
  const max = history.retention.maxEvents;
  const read = (from: number, upTo: number) => history.read(homeId, { epoch: pos.epoch, offset: from }, upTo, max);
  let lo = Math.max(0, pos.offset - max);
  let hi = pos.offset;
  if (!(await read(lo, Math.min(lo + 1, pos.offset))).ok) {
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if ((await read(mid, Math.min(mid + 1, pos.offset))).ok) hi = mid;
      else lo = mid + 1;
    }
  }
  const entries: HistoryEntry[] = [];
  for (let from = lo; ; from += EXPORT_PAGE) {
    const found = await read(from, Math.min(from + EXPORT_PAGE, pos.offset));
    if (!found.ok) throw new TierError('unavailable', `the history of home ${homeId} changed during the export (${found.reason}): try again`);
    for (const e of found.entries) entries.push(e);
    if (from + EXPORT_PAGE >= pos.offset) break;
  }
  // a read answers in the epoch it was asked in (another is `epoch_changed`)
  return mapInSlices(entries, (e: HistoryEntry) => ({ epoch: pos.epoch, offset: e.offset, event: decodeValue(e.data) }), undefined, meter);
}
