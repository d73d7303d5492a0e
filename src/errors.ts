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

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; field?: string; ref?: number }) {
    super(message ?? ErrorCodes[code].text, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.field = options?.field;
    this.ref = options?.ref;
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

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; hubCode?: string | undefined }) {
    super(code, message, options);
    this.hubCode = options?.hubCode;
  }
}

/** Wraps anything thrown into a TierError, keeping the cause. */
export function asTierError(err: unknown): TierError {
  if (err instanceof TierError) return err;
  return new TierError('internal', undefined, { cause: err });
}
