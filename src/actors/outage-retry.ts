/**
 * When a hub should come back after the node could not serve it for a backend outage (its
 * directory, store or registry away), in ms: spread over 1–5 s, since every hub of a node meets the
 * same outage and they should not return at once. The session's `reconnect` hint and the upgrade's
 * Retry-After both use it (PROTOCOL.md §2.1, §7).
 */
export function outageRetryMs(): number {
  return 1_000 + Math.floor(Math.random() * 4_000);
}
