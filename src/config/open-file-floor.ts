/**
 * The open-file limit a node cannot start under. Loading the node's modules opens many files at
 * once: under a limit of 128 the start ended with a bare EMFILE stack from the module loader.
 * Read before those modules load (src/main.ts): app-limits.ts loads nothing but node:fs at run time.
 */
import { ownOpenFileLimit } from '../transport/app-limits.js';

/** Below this many open files the node refuses to start: its modules, the store, the workers and a few sockets. */
export const MIN_OPEN_FILES = 256;

/** Why a soft open-file limit of `limit` is too low to start, or null (enough, unlimited, or unreadable: not Linux). */
export function openFileFloor(limit = ownOpenFileLimit()): string | null {
  if (limit === undefined || limit >= MIN_OPEN_FILES) return null;
  return `the open-file limit is ${limit}: a node needs at least ${MIN_OPEN_FILES} (its own files), and one more for each hub and app connection; raise it (ulimit -n, the container's nofile limit) and start again`;
}
