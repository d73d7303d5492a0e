import { closeSync, openSync } from 'node:fs';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../log/logger.js';
import { filePressure } from '../transport/http.js';
import type { us_listen_socket } from '../transport/uws.js';

/** How often the node checks that it can open a file. @default 1_000 (ms) */
export const FILE_PROBE_MS = 1_000;
/** Files the node must be able to open at once before it listens again: a resume with one file to spare would pause at once. */
export const RESUME_HEADROOM = 32;
/**
 * How long answers go on closing their connections after the port listens again: three of uWS's
 * 10 s HTTP idle timeouts, so the connections a flood opened at the resume are let go too.
 */
export const CLOSING_AFTER_RESUME_MS = 30_000;

/**
 * Whether the process can open `n` more files now: /dev/null opened `n` times and closed again.
 * Only EMFILE and ENFILE mean no; any other failure is not a shortage of files.
 */
export function canOpenFiles(n: number): boolean {
  const opened: number[] = [];
  try {
    while (opened.length < n) opened.push(openSync('/dev/null', 'r'));
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== 'EMFILE' && code !== 'ENFILE';
  } finally {
    for (const fd of opened) closeSync(fd);
  }
}

export interface ListenPauseDeps {
  /** the public listen socket, bound */
  socket: us_listen_socket;
  /** binds the public port again (same port, same sharing); rejects when it cannot */
  listen: () => Promise<{ socket: us_listen_socket }>;
  close: (socket: us_listen_socket) => void;
  log: Logger;
  registry: Registry;
  /** @default FILE_PROBE_MS */
  intervalMs?: number;
  /** @default RESUME_HEADROOM */
  headroom?: number;
  /** @default canOpenFiles */
  canOpen?: (n: number) => boolean;
  /** what HTTP answers read to close their connections (src/transport/http.ts) @default filePressure */
  pressure?: { closing: boolean };
  /** @default CLOSING_AFTER_RESUME_MS */
  closingAfterResumeMs?: number;
  /** @default Date.now */
  now?: () => number;
}

/**
 * Stops listening on the public port while the process is out of open files, and listens again once
 * it has `headroom` of them. Out of files, uSockets retries accept() on a listen socket that stays
 * readable: the loop spins a core and the admin port gets no file (liveness fails). A closed listen
 * socket refuses new connections (the kernel resets those in its backlog) and the loop idles; the
 * connections held time out and free their files. `tier_listen_paused` is 1 meanwhile; readiness
 * reads `paused`. Meanwhile, and for `closingAfterResumeMs` after, every HTTP answer closes its
 * connection: kept-alive connections that go on asking never time out, and held the port closed.
 */
export class ListenPause {
  private socket: us_listen_socket | null;
  private resuming = false;
  private stopped = false;
  private since = 0;
  private relistenFailed = false;
  private readonly timer: NodeJS.Timeout;
  private readonly pauses: Counter;
  private readonly canOpen: (n: number) => boolean;
  private readonly headroom: number;
  private readonly pressure: { closing: boolean };
  private readonly now: () => number;
  private resumedAt = 0;

  constructor(private readonly deps: ListenPauseDeps) {
    this.socket = deps.socket;
    this.canOpen = deps.canOpen ?? canOpenFiles;
    this.headroom = deps.headroom ?? RESUME_HEADROOM;
    this.pressure = deps.pressure ?? filePressure;
    this.now = deps.now ?? Date.now;
    const self = this;
    new Gauge({ name: 'tier_listen_paused', help: 'The public port closed because the process is out of open files (1), else 0', registers: [deps.registry], collect() { this.set(self.paused ? 1 : 0); } });
    this.pauses = new Counter({ name: 'tier_listen_pauses_total', help: 'Times the public port stopped listening because the process was out of open files', registers: [deps.registry] });
    this.timer = setInterval(() => this.tick(), deps.intervalMs ?? FILE_PROBE_MS);
    this.timer.unref();
  }

  get paused(): boolean {
    return this.socket === null;
  }

  /** Closes the public listen socket for good (draining); no probe after it. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.socket) this.deps.close(this.socket);
    this.socket = null;
    this.pressure.closing = false;
  }

  private tick(): void {
    if (this.stopped || this.resuming) return;
    if (this.socket) {
      if (this.canOpen(1)) {
        if (this.pressure.closing && this.now() - this.resumedAt >= (this.deps.closingAfterResumeMs ?? CLOSING_AFTER_RESUME_MS)) this.pressure.closing = false;
        return;
      }
      this.deps.close(this.socket);
      this.socket = null;
      this.pressure.closing = true;
      this.since = Date.now();
      this.relistenFailed = false;
      this.pauses.inc();
      this.deps.log.warn({ headroom: this.headroom }, 'out of open files: the public port stops listening until files are free');
      return;
    }
    if (!this.canOpen(this.headroom)) return;
    this.resuming = true;
    this.deps
      .listen()
      .then(
        ({ socket }) => {
          if (this.stopped) return this.deps.close(socket);
          this.socket = socket;
          this.resumedAt = this.now();
          this.deps.log.info({ pausedMs: Date.now() - this.since }, 'open files free again: the public port listens again');
        },
        (err: unknown) => {
          // another process took the port (bound exclusively) or the bind failed: tried again next tick
          if (!this.relistenFailed) this.deps.log.error({ err }, 'the public port cannot listen again; retrying every probe');
          this.relistenFailed = true;
        },
      )
      .finally(() => {
        this.resuming = false;
      });
  }
}
