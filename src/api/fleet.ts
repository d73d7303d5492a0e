/**
 * Running a fleet: what the operator does to hubs, apart from HTTP (src/api/fleet-routes.ts) so
 * the fleet command line can share it. Every change of a record is announced on
 * `fleet.hubs.changed` (every node drops its cached copy: a disabled, moved or re-keyed hub is seen
 * everywhere at once, not after the cache's 30 s), and a hub whose session must end is told on
 * `hub.<id>.close`, which reaches whichever node holds it. Secrets are made here, sealed before
 * they are stored, and shown once.
 */
import { randomBytes } from 'node:crypto';
import type { Static } from '@sinclair/typebox';
import type { AppEventMessage, RemovedReason } from '../../proto/app.js';
import { KeyedTurns } from '../actors/keyed-turns.js';
import type { DeviceInfo } from '../../proto/frames.js';
import { subjects, type CloseOrder } from '../../proto/subjects.js';
import type { SecretBox } from '../auth/secret-box.js';
import { asTierError, TierError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { decodeValue, encodeBus, isPlainObject } from '../protocol/codec.js';
import type { Bus } from '../ports/bus/bus.js';
import type { Directory, HubLocation } from '../ports/directory/directory.js';
import type { HubInfo, HubLabels, HubPatch, HubQuery, HubRecord, HubRegistry } from '../ports/hub-registry/hub-registry.js';
import type { RuleStore } from '../ports/rule-store/rule-store.js';
import type { ShadowStore } from '../ports/shadow-store/shadow-store.js';
import type { BatchItem, BatchResult, FleetHub, HomeHub, MoveReply, Named as NamedSchema } from '../schemas/fleet.js';
import { monotonicMs } from '../actors/clock.js';

type Named = Static<typeof NamedSchema>;

/** Hubs of a home per read of its index, and all that `listHome` shows (a home is not a fleet); the export and erasure page past it. */
export const MAX_HOME_HUBS = 1_000;
/** Reads and conditional writes of one move before it gives up (each failed one means another move landed). */
const MOVE_TRIES = 5;

export interface FleetDeps {
  registry: HubRegistry;
  bus: Bus;
  directory: Directory;
  shadows: ShadowStore;
  rules: RuleStore;
  /**
   * A hub's event into its home's history and onto the bus, as its sessions publish theirs
   * (src/actors/event-publisher.ts; `epoch`: the session's, 0 for none): a hub leaving a home says
   * so there. Absent: nothing is published.
   */
  publishEvent?: ((event: AppEventMessage, epoch: number) => void) | undefined;
  box: SecretBox;
  log: Logger;
  /**
   * Where `fleet.hubs.changed` goes: a cluster's outbox, which publishes it again after the bus
   * reconnects (src/api/notice-outbox.ts). @default the bus
   */
  notices?: Pick<Bus, 'publish'> | undefined;
  now?: () => number;
}

/** `list`'s query: the registry's filters, plus where the hub is connected. */
export interface FleetQuery extends HubQuery {
  online?: boolean;
  node?: string;
}

/**
 * A new hub secret: 24 random bytes, base64url (32 characters), never starting with `-`: a
 * spreadsheet opening the fleet tool's secrets file would read such a cell as a formula and save it
 * changed (one draw in 64 did; drawing again costs under 0.03 of a bit).
 */
export function newSecret(): string {
  for (;;) {
    const secret = randomBytes(24).toString('base64url');
    if (secret[0] !== '-') return secret;
  }
}

export class Fleet {
  private readonly now: () => number;
  /**
   * Per hub, the move or delete under way: each reads the record and then writes it, so two at
   * once both answered success from the same home, the loser's home keeping a phantom hub (a
   * hostile review, 2026-12-06). One node's run one after another; two nodes' can still race.
   */
  private readonly changing = new KeyedTurns();

  constructor(private readonly deps: FleetDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Provisions one hub; answers the record and its secret in clear (shown once). */
  async provision(item: { hubId: string; homeId: string; model?: string | undefined; labels?: HubLabels | undefined }): Promise<{ record: HubRecord; secret: string }> {
    const secret = newSecret();
    const record: HubRecord = { hubId: item.hubId, homeId: item.homeId, model: item.model, secret: this.deps.box.seal(item.hubId, secret), enabled: true, createdAt: this.now() };
    if (item.labels && Object.keys(item.labels).length > 0) record.labels = item.labels;
    try {
      await this.deps.registry.create(record);
    } catch (err) {
      if (err instanceof TierError && err.code === 'already_exists') throw alreadyProvisioned(item.hubId);
      throw err;
    }
    this.changed(item.hubId);
    return { record, secret };
  }

  /** Each item provisioned or refused on its own (a refused item changes nothing), in order. */
  /** `created`: told of each hub as soon as it exists (so a batch the store cuts short still names those it made). */
  async provisionBatch(items: Array<Static<typeof BatchItem>>, created?: (item: Static<typeof BatchItem>) => void): Promise<Array<Static<typeof BatchResult>>> {
    const seen = new Set<string>();
    const results: Array<Static<typeof BatchResult>> = [];
    for (const item of items) {
      if (seen.has(item.hubId)) {
        results.push({ hubId: item.hubId, ok: false, code: 'already_exists', message: `hub ${item.hubId} appears twice in the batch` });
        continue;
      }
      seen.add(item.hubId);
      try {
        results.push({ hubId: item.hubId, ok: true, secret: (await this.provision(item)).secret });
        created?.(item);
      } catch (err) {
        const e = asTierError(err);
        if (e.code === 'internal' || e.code === 'unavailable') throw err; // the store failed: the caller learns which items were done from a retry
        results.push({ hubId: item.hubId, ok: false, code: e.code, message: e.message });
      }
    }
    return results;
  }

  /** A page of hubs with where each is connected; `online`/`node` filter on that too. */
  async list(q: FleetQuery): Promise<{ hubs: Array<Static<typeof FleetHub>>; next: string | null }> {
    const byLocation = q.online !== undefined || q.node !== undefined;
    if (!byLocation) {
      const page = await this.deps.registry.list(q);
      return { hubs: await this.views(page.hubs), next: page.next };
    }
    // the registry cannot filter on the directory: read its pages (bounded by scanLimit in total) and keep those that match
    const out: Array<Static<typeof FleetHub>> = [];
    let budget = q.scanLimit ?? 5_000;
    let after = q.after;
    for (;;) {
      const page = await this.deps.registry.list({ ...q, after, limit: Math.min(q.limit, budget), scanLimit: budget });
      budget -= page.hubs.length;
      for (const hub of await this.views(page.hubs)) {
        if (out.length === q.limit) return { hubs: out, next: out.at(-1)!.hubId };
        if ((q.online === undefined || hub.online === q.online) && (q.node === undefined || hub.node === q.node)) out.push(hub);
      }
      if (page.next === null) return { hubs: out, next: null };
      if (out.length === q.limit || budget <= 0) return { hubs: out, next: out.length === q.limit ? out.at(-1)!.hubId : page.next };
      after = page.next;
    }
  }

  /** Every hub of a home, for its users: online, and how many devices its shadow holds. */
  /** A page of the home's hubs (MAX_HOME_HUBS), those after `after`, with `next` for the page after (null: the last). */
  async listHome(homeId: string, after?: string): Promise<{ hubs: Array<Static<typeof HomeHub>>; next: string | null }> {
    const hubs = await this.deps.registry.listHome(homeId, MAX_HOME_HUBS, after);
    const next = hubs.length === MAX_HOME_HUBS ? hubs[hubs.length - 1]!.hubId : null;
    return { next, hubs: await this.homeHubViews(hubs) };
  }

  private homeHubViews(hubs: HubRecord[]): Promise<Array<Static<typeof HomeHub>>> {
    return Promise.all(
      hubs.map(async (h) => {
        const [loc, shadow] = await Promise.all([this.deps.directory.lookup(h.hubId), this.deps.shadows.load(h.hubId)]);
        return { hubId: h.hubId, model: h.model ?? null, enabled: h.enabled, online: loc !== null, devices: Object.keys(shadow).length };
      }),
    );
  }

  /**
   * A page of the home's hubs as the operator sees them, in id order: those after `after` (the
   * last id of the page before), at most `limit`; a shorter page is the last (`HubRegistry.listHome`).
   */
  async homeHubs(homeId: string, after?: string, limit = MAX_HOME_HUBS): Promise<Array<Static<typeof FleetHub>>> {
    return this.views(await this.deps.registry.listHome(homeId, limit, after));
  }

  async get(hubId: string): Promise<Static<typeof FleetHub>> {
    const hub = await this.deps.registry.lookup(hubId);
    if (!hub) throw notFound(hubId);
    return (await this.views([hub]))[0]!;
  }

  /** Changes a hub; disabling it closes its session wherever it is. */
  async patch(hubId: string, patch: HubPatch): Promise<Static<typeof FleetHub>> {
    const hub = await this.deps.registry.update(hubId, patch);
    if (!hub) throw notFound(hubId);
    this.changed(hubId);
    if (patch.enabled === false) this.closeSession(hubId, 'hub_disabled');
    return (await this.views([hub]))[0]!;
  }

  /**
   * Moves a hub to another home. The old home's desired state is emptied (unless `keepDesired`)
   * before its session is told: the reconnecting session, its welcome and the new home's users see
   * none of the old home's intents; the reported side, kinds and models stay (the devices' own
   * state, sent again by the hub). Its session closes and reconnects into the new home; once it let
   * go (bounded wait), the old home's apps get `removed` and the new home's a `devices` event with
   * the devices its shadow holds, as at a first connect. Rules and scenes of the old home that name
   * it are reported and left as they are (at run time they no longer reach it: src/rules/home-scope.ts).
   */
  move(hubId: string, homeId: string, options: { keepDesired?: boolean; waitMs?: number } = {}): Promise<Static<typeof MoveReply>> {
    return this.changing.run(hubId, () => this.moveNow(hubId, homeId, options));
  }

  private async moveNow(hubId: string, homeId: string, options: { keepDesired?: boolean; waitMs?: number }): Promise<Static<typeof MoveReply>> {
    const loc = await this.deps.directory.lookup(hubId);
    const { hub, from } = await this.rehome(hubId, homeId);
    let desiredCleared = 0;
    if (from !== homeId) {
      this.changed(hubId);
      // after the record changed (the old home's users can no longer write) and before the session
      // is closed (its successor must open without them)
      if (options.keepDesired !== true) desiredCleared = await this.deps.shadows.clearDesired(hubId);
      this.closeSession(hubId, 'hub_moved');
      if (loc !== null) await this.released(hubId, loc, options.waitMs ?? 2_000);
      this.left(hubId, from, 'moved', loc);
      await this.arrived(hubId, homeId);
    }
    const naming = from !== homeId ? await this.naming(from, hubId) : { rules: [], scenes: [] };
    return { hub: (await this.views([hub]))[0]!, from, desiredCleared, ...naming };
  }

  /** The rules and scenes of `homeId` that name the hub: a move or a delete leaves them as they are, and says so. */
  async naming(homeId: string, hubId: string): Promise<{ rules: Named[]; scenes: Named[] }> {
    const [rules, scenes] = await Promise.all([this.deps.rules.listRules(homeId), this.deps.rules.listScenes(homeId)]);
    const naming = (items: Array<{ id: string; name: string }>) => items.filter((i) => namesHub(i, hubId)).map((i) => ({ id: i.id, name: i.name }));
    return { rules: naming(rules), scenes: naming(scenes) };
  }

  /**
   * The record moved to `homeId` and the home it was moved from: written only if the hub is still
   * where it was read (another node's move may come between), else read again, so two moves
   * through two nodes each answer the home they truly took it from.
   */
  private async rehome(hubId: string, homeId: string): Promise<{ hub: HubRecord; from: string }> {
    for (let tries = 1; ; tries++) {
      const before = await this.deps.registry.get(hubId);
      if (!before) throw notFound(hubId);
      if (before.homeId === homeId) return { hub: before, from: homeId };
      const hub = await this.deps.registry.update(hubId, { homeId }, { homeId: before.homeId });
      if (hub) return { hub, from: before.homeId };
      if (tries === MOVE_TRIES) throw new TierError('unavailable', `hub ${hubId} kept changing homes while being moved: try again`);
    }
  }

  /**
   * Deletes a hub: the record first (no new session, no command), then its session is closed
   * wherever it is, then its shadow once the session let go of it (bounded wait); its home's next
   * event is the hub's `removed`. The home's event history is left as a move leaves it: it holds
   * the other hubs' acknowledged events too (until 2026-12-07 a delete emptied it, losing them:
   * review "entities"); the hub's own past events age out with it, or go with a home's erasure.
   */
  remove(hubId: string, waitMs = 2_000): Promise<{ closed: boolean; homeId: string }> {
    return this.changing.run(hubId, () => this.removeNow(hubId, waitMs));
  }

  private async removeNow(hubId: string, waitMs: number): Promise<{ closed: boolean; homeId: string }> {
    const loc = await this.deps.directory.lookup(hubId);
    const record = await this.deps.registry.get(hubId);
    if (!record || !(await this.deps.registry.remove(hubId))) throw notFound(hubId);
    this.changed(hubId);
    this.closeSession(hubId, 'hub_disabled');
    if (loc !== null) await this.released(hubId, loc, waitMs);
    await this.deps.shadows.remove(hubId);
    this.left(hubId, record.homeId, 'deleted', loc);
    return { closed: loc !== null, homeId: record.homeId };
  }

  /**
   * The hub's `removed` in the home it left. Published as of the session after the one it had
   * (`loc`): a shared history (Redis) then refuses a late event of that session into the home
   * (its `offline` racing this), so `removed` stays the hub's last event there.
   */
  private left(hubId: string, homeId: string, reason: RemovedReason, loc: HubLocation | null): void {
    this.deps.publishEvent?.({ op: 'evt', kind: 'removed', home: homeId, hub: hubId, reason, ts: this.now() }, loc === null ? 0 : loc.epoch + 1);
  }

  /** The devices the hub's shadow holds (those with a kind), as one `devices` event in its new home; none: nothing. */
  private async arrived(hubId: string, homeId: string): Promise<void> {
    if (!this.deps.publishEvent) return;
    const joined: DeviceInfo[] = [];
    for (const [d, device] of Object.entries(await this.deps.shadows.load(hubId))) {
      if (device.kind) joined.push(device.model ? { d, k: device.kind, m: device.model } : { d, k: device.kind });
    }
    if (joined.length > 0) this.deps.publishEvent({ op: 'evt', kind: 'devices', home: homeId, hub: hubId, joined, left: [], ts: this.now() }, 0);
  }

  /**
   * A new secret (sealed in the store), the old one working for `graceS` more; answers the new one
   * in clear. `key`: the caller's idempotency key; a retry with the key of the last rotation (its
   * answer lost) rotates nothing and answers that rotation again, so the secret the hub holds keeps
   * its grace. Without one, each call rotates: the secret before the replaced one stops at once.
   */
  async rotateSecret(hubId: string, graceS: number, key?: string): Promise<{ secret: string; secretVersion: number; previousValidUntil: number; repeated: boolean; homeId: string }> {
    const secret = newSecret();
    const sealed = this.deps.box.seal(hubId, secret);
    const hub = await this.deps.registry.rotateSecret(hubId, sealed, this.now() + graceS * 1_000, key);
    if (!hub) throw notFound(hubId);
    const repeated = hub.secret !== sealed;
    if (!repeated) this.changed(hubId);
    return { secret: repeated ? this.deps.box.open(hubId, hub.secret) : secret, secretVersion: hub.secretVersion ?? 1, previousValidUntil: hub.previousSecret!.until, repeated, homeId: hub.homeId };
  }

  /**
   * Keeps the firmware a hub's hello named (for the `firmware` filter): one registry read per
   * session (cached in cluster mode), a write only when it changed. Failures are logged, never thrown.
   */
  noteFirmware(hubId: string, firmware: string): void {
    void (async () => {
      const hub = await this.deps.registry.lookup(hubId);
      if (hub === null || hub.firmware === firmware) return;
      await this.deps.registry.update(hubId, { firmware });
      this.changed(hubId);
    })().catch((err: unknown) => this.deps.log.warn({ err, hubId }, 'firmware version not kept'));
  }

  /** Every node drops its cached record of the hub. */
  private changed(hubId: string): void {
    this.deps.registry.forget(hubId);
    (this.deps.notices ?? this.deps.bus).publish(subjects.hubsChanged, encodeBus({ hub: hubId }));
  }

  private closeSession(hubId: string, e: CloseOrder['e']): void {
    this.deps.bus.publish(subjects.hubClose(hubId), encodeBus({ e }));
  }

  /** Waits until the session at `loc` released the hub (or `waitMs` passed), then one shadow batch window more. */
  private async released(hubId: string, loc: HubLocation, waitMs: number): Promise<void> {
    // a wait, on the monotonic clock: a step back of the wall clock made it longer (review "clock")
    const until = monotonicMs() + waitMs;
    for (;;) {
      const now = await this.deps.directory.lookup(hubId).catch(() => null);
      if (now === null || now.epoch !== loc.epoch || monotonicMs() >= until) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, this.deps.shadows.batchWindowMs));
  }

  private async views(hubs: HubInfo[]): Promise<Array<Static<typeof FleetHub>>> {
    const locs = await Promise.all(hubs.map((h) => this.deps.directory.lookup(h.hubId)));
    return hubs.map((h, i) => ({
      hubId: h.hubId,
      homeId: h.homeId,
      model: h.model ?? null,
      enabled: h.enabled,
      labels: h.labels ?? {},
      firmware: h.firmware ?? null,
      secretVersion: h.secretVersion ?? 1,
      createdAt: new Date(h.createdAt).toISOString(),
      online: locs[i] !== null,
      node: locs[i]?.node ?? null,
    }));
  }
}

/**
 * A hub provisioned already. Its secret was shown once, in the answer that created it: a caller
 * whose answer was lost (a retry lands here) gets a new one by rotating.
 */
export function alreadyProvisioned(hubId: string): TierError {
  return new TierError('already_exists', `hub ${hubId} is already provisioned; its secret is shown only when it is created: if that answer was lost, get a new secret with POST /v1/admin/hubs/${hubId}/secret (graceS 0 when the hub never received the first)`);
}

function notFound(hubId: string): TierError {
  return new TierError('not_found', `hub ${hubId} is not provisioned`);
}

/** True when any object inside `value` has `hub` equal to `hubId` (triggers, devices, actions, scene commands). */
export function namesHub(value: unknown, hubId: string): boolean {
  if (Array.isArray(value)) return value.some((v) => namesHub(v, hubId));
  if (typeof value !== 'object' || value === null) return false;
  if (Object.hasOwn(value, 'hub') && (value as { hub: unknown }).hub === hubId) return true;
  return Object.values(value).some((v) => namesHub(v, hubId));
}

/**
 * Commands of the app socket and of rules, refused with `hub_disabled` for a disabled hub (the
 * HTTP route checks the record it already read) instead of `hub_offline` once its session closed.
 */
export function commandsToEnabledHubs<A extends unknown[], R>(registry: HubRegistry, send: (hubId: string, ...rest: A) => Promise<R>): (hubId: string, ...rest: A) => Promise<R> {
  return async (hubId, ...rest) => {
    const hub = await registry.lookup(hubId);
    if (hub !== null && !hub.enabled) throw new TierError('hub_disabled', `hub ${hubId} is disabled: commands are refused until it is enabled`);
    return send(hubId, ...rest);
  };
}

/**
 * Every node: a hub changed elsewhere is dropped from this node's cache, then `changed` is told
 * (a cluster re-checks the hub's session if it holds it). Answers the unsubscribe.
 */
export function watchHubChanges(bus: Bus, registry: HubRegistry, log: Logger, changed?: (hubId: string) => void): () => void {
  const sub = bus.subscribe(subjects.hubsChanged, (msg) => {
    const m = decodeValue(msg.data);
    if (isPlainObject(m) && typeof m.hub === 'string') {
      registry.forget(m.hub);
      changed?.(m.hub);
    } else log.warn({ subject: msg.subject }, 'hub change notice without a hub id ignored');
  });
  return () => sub.unsubscribe();
}
