/**
 * 'this turn' when `p` settles (resolved or rejected) in the microtasks of the current turn,
 * 'a later turn' when the next macrotask comes first. What decides, before a WebSocket upgrade,
 * whether uWS's upgrade callback can answer it itself (see src/auth/authenticator.ts).
 */
export const settledIn = (p: Promise<unknown>): Promise<'this turn' | 'a later turn'> =>
  Promise.race([p.then(() => 'this turn' as const, () => 'this turn' as const), new Promise<'a later turn'>((resolve) => setImmediate(() => resolve('a later turn')))]);
