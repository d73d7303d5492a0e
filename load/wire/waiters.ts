import type { ServerToHubFrame } from '../../src/index.js';
import { HubClientError } from './handshake.js';

interface Waiter {
  match: (f: ServerToHubFrame) => boolean;
  resolve: (f: ServerToHubFrame) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Callers waiting for a server frame that matches: each is resolved by the first such frame
 * offered after it started waiting, or rejected at its deadline or when the socket closes.
 */
export class FrameWaiters {
  private readonly waiters = new Set<Waiter>();

  wait(match: (f: ServerToHubFrame) => boolean, timeoutMs: number, hubId: string): Promise<ServerToHubFrame> {
    return new Promise<ServerToHubFrame>((resolve, reject) => {
      const waiter: Waiter = {
        match,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new HubClientError('timeout', `hub ${hubId}: no matching frame within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      waiter.timer.unref();
      this.waiters.add(waiter);
    });
  }

  offer(frame: ServerToHubFrame): void {
    for (const w of this.waiters) {
      if (!w.match(frame)) continue;
      this.waiters.delete(w);
      clearTimeout(w.timer);
      w.resolve(frame);
    }
  }

  rejectAll(err: () => Error): void {
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(err());
    }
    this.waiters.clear();
  }
}
