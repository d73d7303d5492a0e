import type { TokenRevocation } from '../../../proto/subjects.js';

export type { TokenRevocation };

/**
 * User token revocations kept for nodes that start later (a node learns new ones on the bus,
 * `fleet.tokens.revoked`; this is what it reads at start). A revocation is one token (`jti`), every
 * token of a `sub` issued before `before`, or a `home` taken from every token issued before
 * `before`; `exp` (Unix seconds) is when it stops mattering: the revoked tokens have expired by then.
 *
 * - `add` resolves once the revocation is durable where the store is (disk, Redis).
 * - `list(nowS)` answers every revocation added whose `exp` is after `nowS`, in no order; one
 *   that expired may be dropped at any time after its `exp`. Adding the same revocation twice
 *   keeps it once or twice: callers treat revocations as a set.
 * - The store holds at most the revocations of the longest token lifetime: expired ones are
 *   removed by the store itself (on add, or by expiry), so it does not grow without bound.
 */
export interface RevocationStore {
  add(revocation: TokenRevocation): Promise<void>;
  list(nowS: number): Promise<TokenRevocation[]>;
  close(): Promise<void>;
}

/** The one way revocations are keyed in a store: equal revocations, equal keys. */
export function revocationKey(r: TokenRevocation): string {
  if (r.jti !== undefined) return `jti:${r.jti}`;
  return r.home !== undefined ? `home:${r.home}:${r.before ?? 0}` : `sub:${r.sub ?? ''}:${r.before ?? 0}`;
}
