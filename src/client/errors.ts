import type { AppReply } from '../../proto/app.js';
import { ErrorCodes, isErrorCode, type ErrorCode } from '../../proto/errors.js';

type ErrReply = Extract<AppReply, { op: 'err' }>;

/**
 * A refusal from the server (its `err` answer, carried over as it came) or a failure the client
 * found itself (`command_timeout`, `session_closed`), with the number and `temporary` flag of
 * proto/errors.ts: `temporary: true` means the same request may succeed if tried again later.
 */
export class ClientError extends Error {
  override name = 'ClientError';
  /** a code of proto/errors.ts; a newer server may send one this client does not know */
  readonly code: ErrorCode | (string & {});
  readonly num: number;
  readonly temporary: boolean;
  /** the hub's own code of a command it refused (`command_failed`) */
  readonly hubCode?: string;
  /** the hub refused the command as temporarily unable (busy): the same command may succeed later */
  readonly hubTemporary?: true;
  /** the request field at fault (`invalid_field`) */
  readonly field?: string;
  /**
   * false when the command did not run: on the client's own `command_timeout`, it never reached the
   * node in a form it could run (never written to a socket, or refused `unauthorized` and not
   * resent); on the server's `session_closed`, the hub's session closed before sending it to the hub;
   * on the server's `command_timeout`, the command reached the hub's node after its deadline, unsent.
   * Safe to send again
   */
  readonly sent?: boolean;

  constructor(fields: { code: string; num: number; temporary: boolean; message: string; hubCode?: string | undefined; hubTemporary?: boolean | undefined; field?: string | undefined; sent?: boolean | undefined }, options?: { cause?: unknown }) {
    super(fields.message, options);
    this.code = fields.code;
    this.num = fields.num;
    this.temporary = fields.temporary;
    if (fields.hubCode !== undefined) this.hubCode = fields.hubCode;
    if (fields.hubTemporary === true) this.hubTemporary = true;
    if (fields.field !== undefined) this.field = fields.field;
    if (fields.sent !== undefined) this.sent = fields.sent;
  }

  /**
   * The server's `err` answer as an error. A field left out (an older server, a proxy) is filled
   * from the code's row when this client knows the code, else `num` 0, not temporary, the code as
   * the message: dropped, the request waited for the client's own timeout instead (review "compat").
   */
  static fromReply(reply: ErrReply): ClientError {
    const row = isErrorCode(reply.code) ? ErrorCodes[reply.code] : undefined;
    const num = typeof reply.num === 'number' ? reply.num : (row?.code ?? 0);
    const temporary = typeof reply.temporary === 'boolean' ? reply.temporary : (row?.temporary ?? false);
    const message = typeof reply.msg === 'string' ? reply.msg : reply.code;
    const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
    return new ClientError({ code: reply.code, num, temporary, message, hubCode: text(reply.hubCode), hubTemporary: reply.hubTemporary === true, field: text(reply.field), sent: reply.sent === false ? false : undefined });
  }

  /** An argument the client refuses before sending, as the server would (`invalid_field`). */
  static invalid(field: string, message: string): ClientError {
    const row = ErrorCodes.invalid_field;
    return new ClientError({ code: 'invalid_field', num: row.code, temporary: row.temporary, message, field });
  }

  /** A failure found by the client, numbered from the one table. */
  static local(code: ErrorCode, message: string, cause?: unknown, sent?: boolean): ClientError {
    const row = ErrorCodes[code];
    return new ClientError({ code, num: row.code, temporary: row.temporary, message, sent }, cause === undefined ? undefined : { cause });
  }
}

/** Whether an answer from the server is an `err` with its code (the other fields: `fromReply`). */
export function isErrReply(m: Record<string, unknown>): m is ErrReply {
  return m.op === 'err' && typeof m.code === 'string' && m.code.length > 0;
}
