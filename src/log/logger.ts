import { pino, type Logger } from 'pino';

export type { Logger };

/** The process logger; everything else gets a child of it (`{ node }`, `{ hubId }`), never `console`. */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings } });
}
