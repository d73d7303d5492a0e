/**
 * Polls `check` until it returns a value other than undefined (a rejection counts as not yet).
 * No deadline of its own: the test's timeout is the ceiling, and `signal` (the test's) stops the
 * polling when the test gives up.
 */
export async function eventually<T>(signal: AbortSignal, what: string, check: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    if (signal.aborted) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
