/**
 * The one error-code table of the wire protocol, the app protocol and the HTTP API.
 * A string code and its number never change meaning; `temporary: true` tells a client that the
 * same request may succeed later (retry with backoff), `false` that it must change something first.
 */
export const ErrorCodes = {
  // 1xx: frames and requests
  malformed_frame: { code: 100, temporary: false, http: 400, text: 'bytes are not one msgpack/JSON map' },
  frame_too_large: { code: 101, temporary: false, http: 413, text: 'frame or body larger than allowed' },
  unknown_frame_type: { code: 102, temporary: false, http: 400, text: 'frame type not in the catalogue' },
  invalid_field: { code: 103, temporary: false, http: 400, text: 'a field is missing or has the wrong type' },
  unsupported_version: { code: 104, temporary: false, http: 400, text: 'protocol version not spoken here' },
  hello_required: { code: 105, temporary: false, http: 400, text: 'the first frame must be hello' },
  sequence_gap: { code: 107, temporary: true, http: 400, text: 'sequence number skips ahead: resend from the one expected' },
  not_found: { code: 106, temporary: false, http: 404, text: 'no such resource' },
  limit_exceeded: { code: 108, temporary: false, http: 422, text: 'a limit would be exceeded (a hub’s devices, attributes or bytes; a home’s rules or scenes; a rule whose conditions and templates could cost more than one event’s budget; a user’s app sockets on a node): refused whole' },
  method_not_allowed: { code: 109, temporary: false, http: 405, text: 'the path exists, but not with this method: the `Allow` header lists those it has' },
  // 2xx: authentication and authorization
  unauthorized: { code: 200, temporary: false, http: 401, text: 'missing or invalid credentials' },
  forbidden: { code: 201, temporary: false, http: 403, text: 'credentials do not allow this' },
  bad_signature: { code: 202, temporary: false, http: 401, text: 'hub signature does not verify' },
  stale_timestamp: { code: 203, temporary: false, http: 401, text: 'hub timestamp outside the allowed skew' },
  nonce_reused: { code: 204, temporary: false, http: 401, text: 'hub nonce already used' },
  unknown_hub: { code: 205, temporary: false, http: 401, text: 'hub is not provisioned' },
  hub_disabled: { code: 206, temporary: false, http: 403, text: 'hub is disabled' },
  already_exists: { code: 207, temporary: false, http: 409, text: 'resource already exists' },
  hub_moved: { code: 208, temporary: true, http: 409, text: 'the hub was moved to another home: reconnect now' },
  // 3xx: sessions
  session_taken_over: { code: 300, temporary: false, http: 409, text: 'a newer connection of this hub took the session' },
  heartbeat_timeout: { code: 301, temporary: true, http: 408, text: 'no frame within the idle timeout' },
  rate_limited: { code: 302, temporary: true, http: 429, text: 'too many frames or requests' },
  busy: { code: 303, temporary: true, http: 503, text: 'the actor mailbox is full' },
  hello_timeout: { code: 304, temporary: true, http: 408, text: 'no hello within the handshake timeout' },
  not_reading: { code: 305, temporary: true, http: 408, text: 'frames waited for the hub and it read none of them for an idle period' },
  // 4xx: commands
  hub_offline: { code: 400, temporary: true, http: 409, text: 'no node holds a session of this hub' },
  command_timeout: { code: 401, temporary: true, http: 504, text: 'the hub did not answer in time' },
  unknown_device: { code: 402, temporary: false, http: 404, text: 'the hub has no such device' },
  command_failed: { code: 403, temporary: false, http: 502, text: 'the hub reported failure, or its result was refused (hubCode invalid_result: the device may have acted)' },
  session_closed: { code: 404, temporary: true, http: 503, text: 'the session closed before the hub answered' },
  // 6xx: rules
  rule_timeout: { code: 600, temporary: true, http: 503, text: 'a rule evaluation ran past its deadline; its worker thread was replaced' },
  // 5xx: server
  internal: { code: 500, temporary: true, http: 500, text: 'unexpected server error' },
  draining: { code: 501, temporary: true, http: 503, text: 'the node is shutting down' },
  unavailable: { code: 502, temporary: true, http: 503, text: 'a backend the node needs (its store or bus) is unreachable or not answering' },
} as const satisfies Record<string, { code: number; temporary: boolean; http: number; text: string }>;

export type ErrorCode = keyof typeof ErrorCodes;

export function isErrorCode(s: unknown): s is ErrorCode {
  return typeof s === 'string' && Object.hasOwn(ErrorCodes, s);
}

/** WebSocket close codes the server uses (4000-4999 are application codes per RFC 6455). */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  tooLarge: 1009,
  internal: 1011,
  takeover: 4000,
  heartbeatTimeout: 4001,
  helloTimeout: 4002,
  malformed: 4003,
  rateLimited: 4004,
  draining: 4005,
  hubDisabled: 4006,
  unauthorized: 4007,
  moved: 4008,
  backpressure: 4009,
} as const;
