/**
 * Short exclusive claims on a key, shared by every node (Redis `SET key owner NX PX ttl` in
 * cluster mode). The cron scheduler claims `rule:<ruleId>:<scheduledAt>` so that each scheduled
 * instant fires on one node only.
 *
 * - `tryAcquire` succeeds only if nobody holds the key, the caller included: of any number of
 *   racing calls for a free key exactly one gets true. The claim lasts `ttlMs`, then the key is
 *   free again (expiry is the only thing that frees a key whose holder died).
 * - `renew` extends the claim by `ttlMs` from now, only while `owner` still holds it.
 * - `release` frees the key only if `owner` holds it; a late release after expiry and someone
 *   else's acquire changes nothing.
 * - Clocks: expiry is measured by the backend's clock, so nodes need not agree on the time.
 */
export interface Lease {
  tryAcquire(key: string, owner: string, ttlMs: number): Promise<boolean>;
  renew(key: string, owner: string, ttlMs: number): Promise<boolean>;
  release(key: string, owner: string): Promise<boolean>;
  close(): Promise<void>;
}
