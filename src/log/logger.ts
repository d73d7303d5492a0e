import { pino, symbols, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Levels a node accepts, at start (`LOG_LEVEL`) and at run time (`PUT /debug/log-level`). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The process logger; everything else gets a child of it (`{ node }`, `{ hubId }`), never `console`.
 * `destination`: stdout unless given (tests capture lines).
 */
export function createLogger(level: string, bindings: Record<string, unknown> = {}, destination?: DestinationStream): Logger {
  const options = { level, base: { pid: process.pid, ...bindings }, serializers: { err: serializeError } };
  return pino(options, destination ?? stdoutDestination());
}

/**
 * Log bytes waiting for a stdout nobody reads (a stalled log shipper) before lines are dropped:
 * pino's default waits without a bound (RSS 275 → 801 MB in 60 s, review "lifecycle").
 */
export const LOG_BUFFER_MAX = 16 * 2 ** 20;

const dropped = { lines: 0 };

/** Lines dropped so far because stdout was not read (`tier_log_dropped_lines_total`). */
export function droppedLogLines(): number {
  return dropped.lines;
}

/** Destinations that failed for good (a terminal gone, a full log disk): their lines are dropped. */
const failed = new WeakSet<object>();

/** stdout as pino's default writes it (asynchronously, retrying while the pipe is full), with its buffer bounded. */
function stdoutDestination(): DestinationStream {
  const stream = pino.destination({ fd: process.stdout.fd ?? 1, sync: false, maxLength: LOG_BUFFER_MAX });
  const drop = () => void dropped.lines++;
  stream.on('drop', drop);
  // pino gives up on a broken pipe only: EIO (the terminal of a SIGHUP gone) or ENOSPC (a full log
  // disk) went uncaught, then its exit hook retried the write for ever and the node never exited
  // (review "diff14"). Any write error ends the log's writes; later lines are counted as dropped
  stream.on('error', () => {
    if (failed.has(stream)) return;
    failed.add(stream);
    const writable = stream as unknown as { write: (data: unknown) => boolean; flushSync: () => void; end: () => void };
    writable.write = () => (drop(), true);
    writable.flushSync = () => {};
    writable.end = () => {};
  });
  return stream;
}

/**
 * pino's error serializer without the data a client library hangs on its errors: ioredis puts the
 * whole command on a reply error (`command.args`: a shadow write's values, a batch of audit entries
 * with user ids and addresses), and every `{ err }` line wrote it (review "logs"). The command's
 * name stays; its arguments never reach the log.
 */
export function serializeError(err: unknown): unknown {
  const out = pino.stdSerializers.err(err as Error) as unknown;
  if (typeof out !== 'object' || out === null) return out;
  // not an error (pino hands it back as it is): a copy, so the caller's object keeps its fields
  return withoutArguments(out === err ? { ...out } : out, 0);
}

/**
 * `fields` without any command's arguments, at any depth to 4: a MULTI refused carries its
 * commands' errors (`previousErrors`), an AggregateError its errors, each with its command (review
 * diff9). Copies what it changes below the top, so no caller's object loses a field.
 */
function withoutArguments(fields: object, depth: number): object {
  if (Array.isArray(fields)) return depth > 4 ? [] : fields.map((v: unknown) => (typeof v === 'object' && v !== null ? withoutArguments(v, depth + 1) : v));
  const out = depth === 0 ? (fields as Record<string, unknown>) : { ...(fields as Record<string, unknown>) };
  const command = out.command as { name?: unknown } | undefined;
  if (command !== undefined) {
    delete out.command;
    if (typeof command?.name === 'string') out.redisCommand = command.name;
  }
  delete out.args;
  for (const [key, value] of Object.entries(out)) {
    if (typeof value === 'object' && value !== null) out[key] = depth >= 4 ? '[dropped: nested too deep]' : withoutArguments(value, depth + 1);
  }
  return out;
}

export function isLogLevel(level: unknown): level is LogLevel {
  return typeof level === 'string' && (LOG_LEVELS as readonly string[]).includes(level);
}

/**
 * Sets the level of `log` and of every child made from it, before or after: a pino child is a
 * prototype-linked copy of its parent and reads the parent's level unless its own was set (no child
 * of this code base sets one). Answers the level it replaced.
 */
export function setLogLevel(log: Logger, level: LogLevel): { old: string; level: LogLevel } {
  const old = log.level;
  log.level = level;
  return { old, level };
}

/**
 * Adds what `fields()` returns to every line of `log` and of its children, made before or after
 * (the line's own fields win). pino reads its mixin per line from a symbol that children inherit,
 * so it can be set once the process knows it wants it: the trace ids, once tracing is on.
 */
export function addLogFields(log: Logger, fields: () => object): void {
  (log as unknown as Record<symbol, unknown>)[symbols.mixinSym] = fields;
}

/**
 * Ends the log's stream and settles once every line written before is out, or after `timeoutMs`.
 * An exit must wait for this: pino's own `flush(cb)` answers at once while an asynchronous write is
 * in flight, and the exit handler then writes the later lines first (drain steps came out swapped).
 */
export function endLog(log: Logger, timeoutMs = 2_000): Promise<void> {
  const stream = (log as unknown as Record<symbol, unknown>)[symbols.streamSym] as Partial<EndableStream> | undefined;
  if (typeof stream?.end !== 'function' || typeof stream.once !== 'function' || stream.destroyed) return Promise.resolve();
  // a broken pipe (`| head -1`): pino stubbed write and end with one no-op, so no close comes (each
  // exit waited 2 s); another write error: stubbed above
  if ((stream as { write?: unknown }).write === stream.end || failed.has(stream)) return Promise.resolve();
  // a line written after the end would throw `SonicBoom destroyed` out of whatever logged it (a
  // backend client's late error event): the log and every child that follows its level go silent
  log.level = 'silent';
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      // not closed in time: stdout full and not read, or gone. pino's exit hook would retry the
      // write every 100 ms for ever, and a drained node never exited (SIGKILL at the pod's grace,
      // a failed start hung; review "lifecycle"): what is still buffered is given up
      if (typeof stream.flushSync === 'function') stream.flushSync = () => {};
      resolve();
    }, timeoutMs);
    stream.once!('close', () => {
      clearTimeout(timer);
      resolve();
    });
    stream.end!();
  });
}

/** What `endLog` needs of pino's destination (a SonicBoom). */
interface EndableStream {
  end(): void;
  once(event: 'close', listener: () => void): void;
  flushSync?: () => void;
  destroyed: boolean;
}
