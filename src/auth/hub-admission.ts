import { HUB_AUTH_HEADERS, NONCE_PATTERN, signatureMatches, type HubCredentials } from './hub-signature.js';
import type { HubRecord, HubRegistry, NonceStore } from '../ports/hub-registry/hub-registry.js';
import { AuthError, TierError } from '../errors.js';
import { isValidId } from '../../proto/subjects.js';
import type { SecretBox } from './secret-box.js';
import type { HelloRate } from './hello-rate.js';

/**
 * A hub id that is not provisioned, answered to the hub exactly as a bad signature: told apart, a
 * stranger could list which ids (serials) are provisioned without any secret (review "tenant").
 * The node's log line and metric still say `unknown_hub`: the operator's to know.
 */
export class UnprovisionedHubError extends AuthError {
  constructor(readonly hubId: string) {
    super('bad_signature');
  }
}

/** The id of the decoy record an unprovisioned id is checked against: not a valid hub id, so no hub has it. */
const DECOY_ID = 'decoy:no-hub';
const NO_SECRET = 'hub id not provisioned: no secret verifies';

/**
 * Decides whether a hub may open a session, before the WebSocket upgrade completes: the hub is
 * provisioned and enabled, the signature verifies with its secret (or, until its grace period
 * ends, the secret a rotation replaced), the timestamp is within the allowed skew, and the nonce
 * was not used before (nonces are kept until no node could admit their hello again: twice the skew
 * and a second, plus `spreadS` where several nodes share the store; on the wall and the monotonic
 * clock: a step of the wall clock forgets none). Stored secrets are sealed: `box` opens them (without a box
 * they are taken as stored). The nonce is claimed only after the signature verifies, so forged
 * attempts cannot burn nonces, and after the hub's own handshake rate (`rate`). An id not
 * provisioned is refused as a bad signature (`UnprovisionedHubError`).
 */
export class HubAdmission {
  constructor(
    private readonly registry: HubRegistry,
    private readonly nonces: NonceStore,
    private readonly skewS: number,
    private readonly now: () => number = Date.now,
    private readonly box?: SecretBox,
    /**
     * how far behind the claiming node another node sharing the nonce store may run (s): such a node
     * admits a hello that much longer, so its nonce is kept that much longer; 0 with one node
     */
    private readonly spreadS = 0,
    /** handshakes per hub (hello-rate.ts); absent: not limited */
    private readonly rate?: HelloRate,
    /**
     * true while the registry's store is known to have lost its data (cluster mode: Redis restarted
     * empty, redis-data-watch.ts): an id not found is then told to retry later, not refused for good,
     * so the fleet comes back once the data is restored
     */
    private readonly recordsLost: () => boolean | Promise<boolean> = () => false,
  ) {}

  #decoyRecord: HubRecord | undefined;

  /** A record no hub has, its secret sealed as a real one is (sealed once: the seal is not timed). */
  #decoy(): HubRecord {
    return (this.#decoyRecord ??= { hubId: DECOY_ID, homeId: DECOY_ID, model: undefined, secret: this.box ? this.box.seal(DECOY_ID, NO_SECRET) : NO_SECRET, enabled: false, createdAt: 0 });
  }

  /** True when `admit` settles in its caller's turn: both stores say they answer in it (`inTurn`). */
  get inTurn(): boolean {
    return this.registry.inTurn && this.nonces.inTurn;
  }

  async admit(c: HubCredentials): Promise<HubRecord> {
    // asked beside the registry, for every hub: a look at the store's data (shared, at most one a
    // quarter second) costs a found id the same time as a missing one
    const lost = this.recordsLost();
    const record = await this.registry.get(c.hubId);
    if (!record) {
      if (await lost) throw new TierError('unavailable', 'the hub records are not available now: retry later');
      // the work of a provisioned id's check (its secret opened, the signature computed): a bare
      // signature check left it 35 µs faster, told apart over loopback (review "diff24")
      this.signedByLiveSecret(this.#decoy(), c);
      throw new UnprovisionedHubError(c.hubId);
    }
    if (!this.signedByLiveSecret(record, c)) throw new AuthError('bad_signature');
    // whole seconds on both sides, as the hub counts them: else now − skew is refused while now + skew passes
    const skew = Math.abs(Math.floor(this.now() / 1000) - c.ts);
    if (skew > this.skewS) throw new AuthError('stale_timestamp', `timestamp is ${skew} s away from the server clock (allowed ${this.skewS} s)`);
    // before the nonce is stored: a hub over its rate leaves nothing behind
    // taken before the claim's await (hellos arriving together each need one), given back unless admitted
    if (this.rate && !this.rate.take(c.hubId)) {
      throw new AuthError('rate_limited', 'this hub connects more often than the node allows (TIER_HUB_HELLOS_PER_MIN): retry after Retry-After', { retryAfterMs: this.rate.waitMs(c.hubId) });
    }
    try {
      // a hello at ts = now + skew is admitted until the end of second ts + skew, up to 2 × skew + 1 s
      // after this claim: kept only 2 × skew, it could be replayed in that last second (until 2026-12-06)
      if (!(await this.nonces.claim(`${c.hubId}:${c.nonce}`, (this.skewS * 2 + 1 + this.spreadS) * 1000))) throw new AuthError('nonce_reused');
      if (!record.enabled) throw new AuthError('hub_disabled');
    } catch (err) {
      this.rate?.giveBack(c.hubId);
      throw err;
    }
    return record;
  }

  /**
   * The current secret, or the previous one before its grace end (both checked: constant time each).
   * Each is opened on its own: a current secret sealed with a key this node lacks yet (a key
   * rotation rolling over the nodes) refused the previous one it could open (review "rotation").
   */
  private signedByLiveSecret(record: HubRecord, c: HubCredentials): boolean {
    let unopened: unknown;
    const matches = (sealed: string): boolean => {
      try {
        return signatureMatches(this.box ? this.box.open(record.hubId, sealed) : sealed, c);
      } catch (err) {
        unopened ??= err;
        return false;
      }
    };
    const current = matches(record.secret);
    const prev = record.previousSecret;
    const previous = prev !== undefined && prev.until > this.now() && matches(prev.secret);
    if (current || previous) return true;
    if (unopened !== undefined) throw unopened;
    return false;
  }
}

/**
 * Reads the credentials from headers, or from query parameters (hub, ts, nonce, signature) of
 * `query` (the request's query string), parsed only when a header is missing: hubs send headers.
 */
export function readHubCredentials(header: (name: string) => string, query: string): HubCredentials {
  let params: URLSearchParams | undefined;
  const get = (h: string, q: string) => header(h) || (params ??= new URLSearchParams(query)).get(q) || '';
  const hubId = get(HUB_AUTH_HEADERS.hubId, 'hub');
  const ts = get(HUB_AUTH_HEADERS.ts, 'ts');
  const nonce = get(HUB_AUTH_HEADERS.nonce, 'nonce');
  const signature = get(HUB_AUTH_HEADERS.signature, 'signature');
  if (!isValidId(hubId)) throw new AuthError('unauthorized', `${HUB_AUTH_HEADERS.hubId} missing or not an id`, { field: HUB_AUTH_HEADERS.hubId });
  // ASCII digits only (no `u` flag: \d is [0-9]), signed as sent: `Number` would drop leading zeros
  if (!/^\d{1,12}$/.test(ts)) throw new AuthError('unauthorized', `${HUB_AUTH_HEADERS.ts} must be Unix seconds, 1-12 decimal digits`, { field: HUB_AUTH_HEADERS.ts });
  if (!NONCE_PATTERN.test(nonce)) throw new AuthError('unauthorized', `${HUB_AUTH_HEADERS.nonce} must be 16-64 characters [A-Za-z0-9_-]`, { field: HUB_AUTH_HEADERS.nonce });
  if (!/^[0-9a-f]{64}$/i.test(signature)) throw new AuthError('unauthorized', `${HUB_AUTH_HEADERS.signature} must be 64 hex digits`, { field: HUB_AUTH_HEADERS.signature });
  return { hubId, ts: Number(ts), tsDigits: ts, nonce, signature };
}
