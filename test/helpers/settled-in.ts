/** Microtask hops a promise settled in this turn may take at most (a chain of awaits: a few dozen). */
const HOPS = 1_000;

/**
 * 'this turn' when `p` settles (resolved or rejected) in the microtasks of the current turn,
 * 'a later turn' when it needs a macrotask (I/O, a timer, an immediate): no such callback runs
 * between two microtasks, so the answer is exact whatever phase of the event loop calls this.
 * What decides, before a WebSocket upgrade, whether uWS's upgrade callback can answer it itself
 * (see src/transport/hub-gateway.ts).
 */
export async function settledIn(p: Promise<unknown>): Promise<'this turn' | 'a later turn'> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < HOPS && !settled; i++) await null;
  return settled ? 'this turn' : 'a later turn';
}
