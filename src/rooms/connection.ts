// The neutral connection type the engine works with; the gateway adapts uWS sockets to it.
import type { Credentials } from '../auth/tokens.js';
import type { ServerOp } from '../protocol/ops.js';
import type { RoomSet } from './room-set.js';

/**
 * Per-connection engine state, one fixed-shape object kept on the connection itself (a WeakMap
 * entry per socket cost ~26 bytes): open or not, the bad frames of the current window (ingress
 * counts them), and the slot of its next token deadline (engine/deadlines.ts; a Map entry per
 * socket cost ~46 bytes).
 */
export class ConnState {
  badFrames = 0;
  open = true;
  deadlineSlot: number | undefined = undefined;
  constructor(public badSince: number) {}
}

export interface Connection {
  readonly sid: string;
  /** Set by the engine when the connection opens (Sessions). */
  session: ConnState | undefined;
  /** Replaced by a successful `refresh`. */
  creds: Credentials;
  /** Asked for compressed (`z`) frames. */
  readonly compress: boolean;
  /** Rooms this connection is in (Membership adds and deletes them). */
  readonly rooms: RoomSet;
  /** Encodes and sends one frame to this connection only. */
  send(op: ServerOp): void;
  /** Sends an already encoded frame to this connection only. */
  sendEncoded(frame: Uint8Array): void;
  /**
   * Sends with this worker's next fan-out of `room` (the ack of a send there): in the same
   * socket write as the batch frame when the socket gets one, else within one effective tick.
   */
  sendWithBatch(op: ServerOp, room: string): void;
  /** Starts / stops receiving the room's published frames. */
  subscribe(room: string): void;
  subscribed(room: string): boolean;
  /** Resolves once this connection's send buffer holds at most `maxBytes` (or it closed). */
  drained(maxBytes: number): Promise<void>;
  unsubscribe(room: string): void;
  close(code: number, reason: string): void;
}

/** What one frame's fan-out wrote. */
export interface Delivered {
  /** Sockets it was written to (uWS skips those over maxBackpressure). */
  receivers: number;
  bytes: number;
}

/**
 * Fan-out of one encoded frame to every local member of a room (uWS publish). A room's frames
 * go out in order; a big room's are written over several loop turns, so `done` may come later.
 */
export interface RoomPublisher {
  /** `z` is the compressed variant for members that asked for it (absent: they get `plain`). */
  publish(room: string, plain: Uint8Array, z?: Uint8Array, done?: (d: Delivered) => void): void;
}

/** The join requested in the upgrade's query string (`room`, `since`, `epoch`, `last`), unvalidated. */
export interface InitialJoin {
  room: string;
  since?: string;
  epoch?: string;
  last?: string;
}
