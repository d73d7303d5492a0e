/**
 * An event's `src`: which frame of its hub it came from, `<boot tag>.<s>`. A hub resends a frame
 * not yet acknowledged with the same boot id and `s` (PROTOCOL.md §3), so after a failover the
 * event it makes again, stored at a new offset, has the same `src`: rules key their notifications
 * on it (dedup-key.ts), apps and services may drop the second. The tag names one numbering of the
 * boot id (kept in the hub's cursor): a hub back on a boot id it used before starts `s` at 1 again,
 * under a new tag. It is short and fixed in length whatever the boot id's.
 */
import { createHash, randomBytes } from 'node:crypto';

/**
 * The tag of a hub's first numbering of a boot id: the same on every node, with no cursor stored
 * yet (hub-reports hashes the boot id with the hub record's provision mark).
 */
export function bootTag(boot: string): string {
  return createHash('sha256').update(boot).digest('base64url').slice(0, 8);
}

/**
 * The tag of a numbering begun again for a boot id used before (a hub back on an earlier one: its
 * `s` start at 1 again), stored in the cursor before the welcome: 48 random bits, so the events of
 * this numbering are not taken for those of an earlier one.
 */
export function restartTag(): string {
  return randomBytes(6).toString('base64url');
}
