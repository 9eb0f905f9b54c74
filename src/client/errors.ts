// Typed SDK errors. `code` is one of the wire contract's codes (PROTOCOL §5) when the server
// refused something, or one of the client-side codes below when the SDK did.
import { ERRORS, type ErrorCode } from '../protocol/errors.js';

/** Error codes the server sends in `error` frames: the server's own registry (PROTOCOL §5, §9). */
export const SERVER_ERROR_CODES = Object.keys(ERRORS) as readonly ErrorCode[];

/** Error codes the SDK itself raises. */
export const CLIENT_ERROR_CODES = [
  /** the connection dropped (or was not open) while the request was in flight: it may or may not have been applied */
  'DISCONNECTED',
  /** no reply within `requestTimeoutMs` */
  'TIMEOUT',
  /** `client.close()` was called */
  'CLOSED',
  /** the server refused the token during the upgrade (HTTP 401), or the static token has expired */
  'UNAUTHORIZED',
  /** `getToken()` threw or returned something that is not a string */
  'TOKEN_FAILED',
  /** the server sent something that is not a valid frame, or the connection was closed for bad frames (4008) */
  'PROTOCOL',
  /** a pending `join` was abandoned by `leave()` */
  'ABORTED',
] as const;

export type ServerErrorCode = ErrorCode;
export type ClientErrorCode = (typeof CLIENT_ERROR_CODES)[number];
export type RoomcastErrorCode = ServerErrorCode | ClientErrorCode;

export interface RoomcastErrorInit {
  /** ms to wait before retrying (`RATE_LIMITED`, `MUTED`, `KICKED`) */
  retryMs?: number;
  /** the room the failed request was about, when known */
  room?: string;
  /** the underlying error (transport failure, getToken failure, ...) */
  cause?: unknown;
}

export class RoomcastError extends Error {
  override readonly name = 'RoomcastError';
  readonly code: RoomcastErrorCode;
  readonly retryMs?: number;
  readonly room?: string;
  override readonly cause?: unknown;

  constructor(code: RoomcastErrorCode, message: string = code, init: RoomcastErrorInit = {}) {
    super(message);
    this.code = code;
    if (init.retryMs !== undefined) this.retryMs = init.retryMs;
    if (init.room !== undefined) this.room = init.room;
    if (init.cause !== undefined) this.cause = init.cause;
  }

  /** True when the server refused the request (a contract code), false for SDK-side failures. */
  get fromServer(): boolean {
    return (SERVER_ERROR_CODES as readonly string[]).includes(this.code);
  }
}

/** Builds a RoomcastError from an `error` frame; unknown codes are kept as they are. */
export function errorFromFrame(f: Record<string, unknown>, room?: string): RoomcastError {
  const code = (typeof f.code === 'string' ? f.code : 'PROTOCOL') as RoomcastErrorCode;
  const message = typeof f.message === 'string' ? f.message : code;
  return new RoomcastError(code, message, { retryMs: typeof f.retryMs === 'number' ? f.retryMs : undefined, room });
}
