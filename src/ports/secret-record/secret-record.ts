/**
 * What a cluster recorded of the secrets its nodes must share (JWT_SECRET, ADMIN_TOKEN, the
 * TIER_SECRET_KEY ids), and of the token values its rotations dropped: digests and key ids only,
 * never a secret, so a node started with another secret, or still accepting a dropped one, is
 * refused instead of joining and refusing 1/N of tokens and hubs (or letting a dropped one in)
 * (src/compose/shared-secrets-check.ts). One record per cluster (Redis key prefix).
 *
 * - `salt` answers the record's salt; the first caller's `fresh` becomes it, later calls answer it
 *   unchanged: of racing first callers exactly one salt wins and all of them are told that one.
 * - `claim` sets each field not set yet to the given value (first writer wins per field) and
 *   answers every field as recorded after it.
 * - `replace` overwrites the given fields (a rotation declared, the key ids of a node accepted, the
 *   values dropped).
 * - `read` answers every field; an empty record is `{}`.
 * - The salt, never changed once written, is also the mark that the store still holds the cluster's
 *   data (src/compose/redis-data-watch.ts): `dataMark` answers it with the loss note beside it;
 *   `noteDataLost` writes a note only while note and salt are still those the caller read (compare
 *   and set: an acceptance or a restore since is never written over); `noteAccepted` binds an
 *   operator's bare `accepted` to the salt; `clearDataLost` deletes the note only while it is the one
 *   read.
 *
 * Any backend failure rejects the call.
 */
export interface SecretRecord {
  /** where the record lives, for messages to the operator (`Redis key tier:cluster:secrets`) */
  readonly where: string;
  salt(fresh: string): Promise<string>;
  claim(fields: Readonly<Record<string, string>>): Promise<Record<string, string>>;
  replace(fields: Readonly<Record<string, string>>): Promise<void>;
  read(): Promise<Record<string, string>>;
  /**
   * The salt as the store holds it now, and the note of a loss of the cluster's data (a node's, or
   * an operator's acceptance): the mark that the store still holds its data (src/compose/redis-data-watch.ts).
   */
  dataMark(): Promise<{ salt?: string; note?: string }>;
  /** Writes the note of a loss while the note and the salt are still those `seen` (an operator's acceptance since is kept). */
  noteDataLost(note: string, seen: { salt?: string; note?: string }): Promise<void>;
  /** Turns an operator's bare acceptance (`accepted`) into one of the salt found with it (`accepted:<salt>`). */
  noteAccepted(salt: string): Promise<void>;
  /** Deletes the note while it is `note` (a loss's note left beside the salt it names: a restore that kept it). */
  clearDataLost(note: string): Promise<void>;
}
