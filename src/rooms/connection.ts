// The neutral connection type the engine works with; the gateway adapts uWS sockets to it.
import type { Credentials } from '../auth/tokens.js';
import type { ServerOp } from '../protocol/ops.js';
import { RoomSet } from './room-set.js';

const OPEN_BIT = 1;
/** The lowest bit of ConnState's `bits` a subclass may use. */
export const CONN_BITS_FREE = 2;

/**
 * The engine's per-connection state, as fields of the connection object itself: a connection
 * class extends it, and it is the connection's own room set. Objects of their own (this state,
 * the room set, a boxed timestamp) cost ~140 bytes per member, a quarter of the JS heap a
 * member holds (bench/notes/big-room.md).
 */
export class ConnState extends RoomSet {
  /**
   * Small per-connection flags packed into one small integer: `open` here, and the gateway's
   * own (bits from CONN_BITS_FREE up). A boolean field costs 8 bytes per member.
   */
  protected bits = 0;
  /** Bad frames in the window `badWindow` (ingress counts them). */
  badFrames = 0;
  /** The fixed window those frames fell in: a window number stays a small integer, where a
   * timestamp would be a 16-byte heap number per connection. */
  badWindow = 0;
  /** The slot of its next token deadline (engine/deadlines.ts; a Map entry per socket cost ~46 bytes). */
  deadlineSlot: number | undefined = undefined;

  /** Set by the engine when the connection opens (Sessions), cleared when it closes. */
  get open(): boolean {
    return (this.bits & OPEN_BIT) !== 0;
  }

  set open(v: boolean) {
    this.bits = v ? this.bits | OPEN_BIT : this.bits & ~OPEN_BIT;
  }

  /** Rooms this connection is in (Membership adds and deletes them). */
  get rooms(): RoomSet {
    return this;
  }
}

export interface Connection extends ConnState {
  /** Replaced by a successful `refresh`. */
  creds: Credentials;
  /** Asked for compressed (`z`) frames. */
  readonly compress: boolean;
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
  /** Members that asked for compressed frames get it deflated (once, when it is big enough). */
  publish(room: string, plain: Uint8Array, done?: (d: Delivered) => void): void;
}

/** The join requested in the upgrade's query string (`room`, `since`, `epoch`, `last`), unvalidated. */
export interface InitialJoin {
  room: string;
  since?: string;
  epoch?: string;
  last?: string;
}
