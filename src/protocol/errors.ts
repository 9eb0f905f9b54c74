// The registry of wire error codes (PROTOCOL §5). Each code has a default message and the
// HTTP status the API uses for it; docs/protocol.md lists the same set (a test checks).
export const ERRORS = {
  BAD_FRAME: { status: 400, message: 'frame is not one binary MessagePack map with an op' },
  UNKNOWN_OP: { status: 400, message: 'unknown op' },
  BAD_ROOM: { status: 400, message: 'room id must be 1-64 chars of A-Z a-z 0-9 _ . : -' },
  TOO_LARGE: { status: 413, message: 'message too large' },
  RATE_LIMITED: { status: 429, message: 'rate limit exceeded' },
  NOT_JOINED: { status: 400, message: 'not joined to this room' },
  FORBIDDEN: { status: 403, message: 'not allowed' },
  MUTED: { status: 403, message: 'muted in this room' },
  KICKED: { status: 403, message: 'kicked from this room' },
  TOO_MANY_ROOMS: { status: 400, message: 'too many rooms on this connection' },
  REJECTED: { status: 400, message: 'rejected by content review' },
  UNAVAILABLE: { status: 503, message: 'room log unavailable; message not sent' },
  BAD_TOKEN: { status: 401, message: 'token is malformed, wrongly signed or expired' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

/**
 * A rejection carrying a contract error code; thrown or returned by validation and limits.
 * It is an expected answer, not a bug: no stack trace is captured, because under overload
 * every shed or rate-limited message makes one and the capture was most of its cost.
 */
export class WireError extends Error {
  readonly code: ErrorCode;
  readonly retryMs?: number;

  constructor(code: ErrorCode, message: string = ERRORS[code].message, retryMs?: number) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.code = code;
    this.retryMs = retryMs;
  }
}

/** WebSocket close codes roomcast uses (4000-4999 is the application range). */
export const CLOSE = {
  /** normal close after `bye` while draining */
  GOING_AWAY: 1001,
  /** too many bad frames; do not reconnect with the same client */
  BAD_FRAMES: 4008,
  /** replies to this connection piled up while it did not read; reconnect and recover */
  TOO_SLOW: 4009,
  /** the token expired and was not refreshed in time; reconnect with a fresh token */
  TOKEN_EXPIRED: 4010,
  /** the user was disconnected by the server API (POST /v1/users/:uid/disconnect) */
  DISCONNECTED: 4011,
} as const;
