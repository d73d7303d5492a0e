/**
 * An event's `src`: which frame of its hub it came from, `<boot tag>.<s>`. A hub resends a frame
 * not yet acknowledged with the same boot id and `s` (PROTOCOL.md §3), so after a failover the
 * event it makes again, stored at a new offset, has the same `src`: rules key their notifications
 * on it (dedup-key.ts), apps and services may drop the second. The tag is short and fixed in
 * length whatever the boot id's: 48 bits of its SHA-256, computed once a session.
 */
import { createHash } from 'node:crypto';

export function bootTag(boot: string): string {
  return createHash('sha256').update(boot).digest('base64url').slice(0, 8);
}
