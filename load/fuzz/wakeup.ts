/**
 * Waiting on a socket's inbox: a condition that can only change when a message or the close
 * arrives is checked again at each `poke()` (no polling), until it holds, the socket is closed,
 * or the deadline passes.
 */
export class Wakeup {
  private wake: (() => void) | null = null;

  /** A message or the close arrived. */
  poke(): void {
    this.wake?.();
  }

  /** True once `done()` holds (checked at every poke and at the close), false after `timeoutMs`. */
  async until(done: () => boolean, closed: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (closed()) return done();
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
    return true;
  }
}
