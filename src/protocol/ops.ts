// Types of the v1 wire contract (PROTOCOL §3, §4, §9). No imports: the client SDK uses them too.

/** One message in a room's stream. */
export interface Msg {
  /** sender uid (`system` for API messages without a uid) */
  u: string;
  /** sender display name */
  n?: string;
  /** kind: `chat`, `gift`, `system` or a custom kind (likes are only counted, in `Batch.likes`) */
  k: string;
  /** body: a string for chat; any MessagePack value for API kinds */
  b: unknown;
  /** server time, ms */
  t: number;
  /** extras set through the server API */
  x?: Record<string, unknown>;
}

export type ClientOp =
  | { op: 'join'; ref?: number; room: string; since?: number; epoch?: string; last?: number }
  | { op: 'leave'; ref?: number; room: string }
  | { op: 'send'; ref?: number; room: string; kind: 'chat'; body: string }
  | { op: 'send'; ref?: number; room: string; kind: 'like'; count?: number }
  | { op: 'kick'; ref?: number; room: string; uid: string; reason?: string; seconds?: number }
  | { op: 'mute'; ref?: number; room: string; uid?: string; seconds?: number }
  | { op: 'ping'; ref?: number }
  | { op: 'refresh'; ref?: number; token: string };

export interface BatchFrame {
  op: 'batch';
  room: string;
  epoch: string;
  from: number;
  to: number;
  msgs: Msg[];
  likes?: number;
}

export type ServerOp =
  | { op: 'welcome'; sid: string; uid: string; node: string; hb: number }
  | { op: 'joined'; ref?: number; room: string; epoch: string; seq: number; members: number; recovered?: boolean }
  | { op: 'left'; ref?: number; room: string }
  | BatchFrame
  | { op: 'ack'; ref?: number; shown: boolean; seq?: number }
  | { op: 'members'; room: string; count: number }
  | { op: 'kicked'; room: string; reason?: string }
  | { op: 'muted'; room: string; until: number; all?: boolean }
  | { op: 'error'; code: string; message: string; ref?: number; retryMs?: number }
  | { op: 'bye'; reason: string; reconnectMs: number }
  | { op: 'pong'; ref?: number; ts: number }
  | { op: 'refreshed'; ref?: number; exp: number }
  | { op: 'expiring'; in: number }
  | { op: 'z'; data: Uint8Array };

export const ROOM_RE = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Most log entries a `join` may ask for with `last` (PROTOCOL §9). */
export const MAX_LAST = 100;

/**
 * Most likes one `like` frame may carry (`count`, an extension: an SDK sums a user's taps into
 * one frame). The per-user like rate still applies to each like: `likeBurst` (default 10) is
 * the most one frame can pass.
 */
export const MAX_LIKE_COUNT = 100;

/**
 * The token may travel in `Sec-WebSocket-Protocol` instead of the query string (which proxy
 * access logs record): the client offers `roomcast` and `roomcast.token.<jwt>`; the server
 * answers `roomcast`.
 */
export const WS_PROTOCOL = 'roomcast';
export const WS_TOKEN_PROTOCOL_PREFIX = 'roomcast.token.';

/** The one bound on user ids, wherever one arrives (token `sub`, kick/mute `uid`, API `uid`). */
export const UID_MAX = 64;

export function isUid(v: unknown): v is string {
  return typeof v === 'string' && v.length >= 1 && v.length <= UID_MAX;
}
