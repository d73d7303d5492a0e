import { ErrorCodes, type ErrorCode } from '../proto/errors.js';

/**
 * An expected failure with a stable code from the protocol's error table. Subclasses name the
 * area it came from; the code decides what a client sees (error frame, HTTP status, close code).
 */
export class TierError extends Error {
  override name = 'TierError';
  readonly code: ErrorCode;
  /** the offending field, for validation failures */
  readonly field: string | undefined;
  /** the sequence number or command id of the refused frame, when known */
  ref: number | undefined;
  /** when a refusal for now knows when it ends (a rate's next token), ms: said as `Retry-After` */
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; field?: string; ref?: number; retryAfterMs?: number }) {
    super(message ?? ErrorCodes[code].text, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.field = options?.field;
    this.ref = options?.ref;
    this.retryAfterMs = options?.retryAfterMs;
  }

  get numeric(): number {
    return ErrorCodes[this.code].code;
  }

  get temporary(): boolean {
    return ErrorCodes[this.code].temporary;
  }

  get httpStatus(): number {
    return ErrorCodes[this.code].http;
  }
}

/** Bytes or fields that break the wire protocol. */
export class ProtocolError extends TierError {
  override name = 'ProtocolError';
  /** the type `t` of the refused frame, when it decoded far enough to tell */
  frameType: number | undefined;
}

/** Credentials that are missing, wrong, or not enough. */
export class AuthError extends TierError {
  override name = 'AuthError';
}

/** A command that could not reach the hub or got no good answer. */
export class CommandError extends TierError {
  override name = 'CommandError';
  /** the hub's own error code when the hub refused the command (`command_failed`, `unknown_device`) */
  readonly hubCode: string | undefined;
  /** the hub said its refusal was temporary (an error frame's `tmp`): the same command may succeed later */
  readonly hubTemporary: boolean;
  /** `session_closed` for a command the session never sent to the hub: safe to send again */
  readonly unsent: boolean;
  /** `session_closed` as the node's drain (or a shed) moved the hub away, the command unanswered: it may have run */
  readonly hubMoving: boolean;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; hubCode?: string | undefined; hubTemporary?: boolean; unsent?: boolean; hubMoving?: boolean }) {
    super(code, message, options);
    this.hubCode = options?.hubCode;
    this.hubTemporary = options?.hubTemporary === true;
    this.unsent = options?.unsent === true;
    this.hubMoving = options?.hubMoving === true;
  }
}

/** Socket errors that say a backend is away, not that the request was wrong. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/** What ioredis says of a Redis it cannot reach (offline queue off, no retries) or that does not answer. */
const UNREACHABLE_MESSAGE = /^(Connection is closed|Command timed out|Stream isn't writeable)/;
/**
 * Redis refusing for now, not the request (full, a replica after a failover, loading, a failed
 * save, cluster or script busy): each was a 500 and an unsampled error line (review "logs").
 * Credentials (NOAUTH, WRONGPASS) are not here: they are a setting to fix, not an outage.
 */
const REDIS_NOT_NOW = /^(OOM|READONLY|LOADING|MISCONF|MASTERDOWN|CLUSTERDOWN|BUSY|TRYAGAIN|NOREPLICAS)\b/;

/**
 * A Redis that answers but refuses for now (full, read-only, loading, …): counted as away, yet it
 * is the one outage no connection watch sees, so whoever logs only refusals must log these.
 */
export function isRedisRefusal(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'ReplyError' && REDIS_NOT_NOW.test(err.message)) return true;
  // a MULTI refused because its commands were (full, say): EXECABORT with their errors
  const previous = (err as { previousErrors?: unknown }).previousErrors;
  return /^EXECABORT\b/.test(err.message) && Array.isArray(previous) && previous.length > 0 && previous.every(isRedisRefusal);
}

/** A write's rejection by lmdb-js for a failed commit (the disk's error is in `commitError`; src/ports/lmdb-commit-failures.ts). */
export function isCommitFailure(err: unknown): err is Error & { commitError: Promise<unknown> } {
  const commitError = (err as { commitError?: { then?: unknown } } | null | undefined)?.commitError;
  return err instanceof Error && typeof commitError?.then === 'function';
}

/**
 * Whether `err` (or an error it was caused by) says a backend is unreachable or not answering:
 * a TierError `unavailable`, a socket error, ioredis' own, a commit the node's own disk refused
 * (full). Such a failure is `unavailable` (503), not `internal` (500): an operator sees an outage
 * apart from a bug.
 */
export function isUnreachable(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 5; depth++, e = e.cause) {
    if ((e instanceof TierError && e.code === 'unavailable') || isCommitFailure(e)) return true;
    const code = (e as { code?: unknown }).code;
    if (e.name === 'MaxRetriesPerRequestError' || (typeof code === 'string' && UNREACHABLE_CODES.has(code)) || UNREACHABLE_MESSAGE.test(e.message)) return true;
    if (isRedisRefusal(e)) return true;
  }
  return false;
}

/** Wraps anything thrown into a TierError, keeping the cause: `unavailable` when a backend is away, else `internal`. */
export function asTierError(err: unknown): TierError {
  if (err instanceof TierError && (err.code !== 'internal' || !isUnreachable(err.cause))) return err;
  return new TierError(isUnreachable(err) ? 'unavailable' : 'internal', undefined, { cause: err });
}
