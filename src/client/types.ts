// Public types of the SDK and the wire frames it reads (PROTOCOL §3, §4). Wire types come
// from src/protocol, which has no server dependencies, so server and SDK share one definition.
import type { Msg } from '../protocol/ops.js';
import type { RoomcastError } from './errors.js';

export type { Msg } from '../protocol/ops.js';

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** A batch of a room's log, delivered in order and exactly once per seq. */
export interface Batch {
  room: string;
  epoch: string;
  /** first and last seq covered (inclusive) */
  from: number;
  to: number;
  msgs: Msg[];
  /** likes aggregated into this batch (0 when none) */
  likes: number;
  /** true when the batch is history: part of a recovery replay, or the recent entries a join asked for with `last` */
  replay: boolean;
}

export interface JoinResult {
  room: string;
  epoch: string;
  /** the last seq in the room's log when joined: the stream continues after it */
  seq: number;
  /** approximate member count */
  members: number;
  /** present when the join asked to resume (`since`): whether nothing was lost */
  recovered?: boolean;
}

export interface JoinOptions {
  /** resume after this seq (e.g. one persisted from an earlier session) */
  since?: number;
  /** the epoch `since` belongs to */
  epoch?: string;
  /**
   * on the first join, also get the room's last N log entries (≤ 100) as `batch` events
   * with `replay: true` before the live stream (ignored with `since`)
   */
  last?: number;
}

export interface Ack {
  /** false when the room's budget sampled the message out: it was not delivered */
  shown: boolean;
  /** seq of the log entry holding the message (absent when `shown` is false) */
  seq?: number;
}

export interface RoomInfo {
  room: string;
  epoch?: string;
  /** last seq delivered to the app */
  seq?: number;
  members?: number;
  /** joined on the current connection */
  joined: boolean;
  /** ms since the epoch until which this user is muted here (0 = not muted) */
  mutedUntil: number;
  /** ms since the epoch until which the whole room's chat is muted (0 = not muted) */
  roomMutedUntil: number;
}

export interface StateEvent {
  state: ConnectionState;
  previous: ConnectionState;
  /** consecutive failed attempts so far */
  attempt: number;
  /** with `reconnecting`: ms until the next attempt */
  delayMs?: number;
  /** with `connecting`/`reconnecting`: the URL being tried (without the token) */
  url?: string;
  /** what ended the previous connection or attempt, when known */
  error?: RoomcastError;
  /** WebSocket close code of the previous connection, when there was one */
  closeCode?: number;
}

export interface OpenEvent {
  sid: string;
  uid: string;
  node: string;
  /** server idle timeout, s */
  hb: number;
  url: string;
}

export interface JoinedEvent extends JoinResult {
  /** true when the SDK rejoined by itself (after a reconnect or to fill a gap) */
  resumed: boolean;
}

export interface ResetEvent {
  room: string;
  /** the epoch and seq the stream continues from */
  epoch: string;
  seq: number;
  /** where the app was before the break */
  previousEpoch?: string;
  previousSeq?: number;
  /** `not-recovered`: the server answered recovered:false; `epoch-changed`: a batch came from a new epoch */
  reason: 'not-recovered' | 'epoch-changed';
}

export interface GapEvent {
  room: string;
  /** the seq the SDK expected next and the `from` it got */
  expected: number;
  got: number;
}

export interface ClientEvents {
  state: StateEvent;
  open: OpenEvent;
  batch: Batch;
  joined: JoinedEvent;
  /** the room's stream broke: messages between previousSeq and seq may be missing (recovered:false) */
  reset: ResetEvent;
  /** a seq gap was seen; the SDK is recovering it */
  gap: GapEvent;
  members: { room: string; count: number };
  kicked: { room: string; reason?: string; retryMs?: number };
  muted: { room: string; until: number; all: boolean };
  bye: { reason: string; reconnectMs: number };
  /** errors not tied to a request the app is awaiting */
  error: RoomcastError;
}

/** A decoded server frame (fields are checked where used). */
export type Frame = Record<string, unknown> & { op: string };
