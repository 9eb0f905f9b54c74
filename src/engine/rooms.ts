// Joining and leaving rooms: following a room on the bus while it has local members, and
// recovery — replaying the log after `since`, at the pace the member's socket drains, until
// it has caught up with the live stream; only then is it subscribed to live batches, so its
// stream is contiguous and in order. A join with `last` gets the room's recent entries the same
// way, from the pipeline's in-memory tail.
import type { LiveFeed, LogEntry, Presence, RoomHead, RoomLog } from '../bus/bus.js';
import { frameBytes, type EncodedFrame } from '../protocol/codec.js';
import { CLOSE, WireError } from '../protocol/errors.js';
import { MAX_LAST } from '../protocol/ops.js';
import type { Connection } from '../rooms/connection.js';
import type { Membership } from '../rooms/membership.js';
import type { TickPipeline } from '../tick/pipeline.js';
import { frameLength } from '../tick/batch.js';
import { ReplayFrames } from './replay-frames.js';

export interface RoomsOptions {
  bus: RoomLog & LiveFeed & Pick<Presence, 'members'>;
  membership: Membership;
  pipeline: TickPipeline;
  /** Largest recovery gap, in log entries (beyond it: recovered:false). */
  maxReplay: number;
  /** A replay pauses while the member's send buffer holds more than this (bytes). */
  replayBufferBytes: number;
  /** A replay whose member's socket does not drain for this long closes it (4009). */
  replayStallMs: number;
  /** Frames over this size go compressed to members that asked for it. */
  compressThreshold: number;
}

/** The engine's say over a join in progress, asked after every wait. */
export interface JoinGuard {
  /** Throws a WireError when the join may no longer go on (closed, kicked, replaced, no longer allowed). */
  check(): void;
  /** `joined` is about to be sent: the join is no longer pending. */
  joined(): void;
}

export interface JoinRequest {
  room: string;
  since?: number;
  epoch?: string;
  /** Recent log entries to send after `joined` (ignored with `since`). */
  last?: number;
  ref?: number;
}

/** Replay frames (recovery and `last`) hold at most this many entries, and REPLAY_FRAME_BYTES of messages. */
const REPLAY_MAX_ENTRIES = 100;
/**
 * Under uWS's 16 KiB cork buffer (LoopData::CORK_BUFFER_SIZE), with room for the frame's header:
 * uWS formats a smaller message in its loop's one shared buffer, a bigger one in the socket's own
 * backlog string, which it resizes to the frame and never shrinks (BackPressure::clear keeps the
 * capacity), as it keeps what a slow reader has not taken yet. A reconnect wave of 5k members
 * replaying 40 KB each left 33–35 KiB per member with these frames, 43–44 with live-sized ones
 * (FRAME_MAX_BYTES; bench/recovery-wave.mjs, bench/notes/big-room.md, session 22).
 */
export const REPLAY_FRAME_BYTES = 15 * 1024;
/** One page of the log per read: a replay holds at most one frame's worth of entries. */
const RANGE_PAGE = REPLAY_MAX_ENTRIES;
/** Longest wait for this worker's delivery to reach a joiner's `since`. */
const AHEAD_WAIT_MS = 2000;

export class Rooms {
  private readonly following = new Map<string, Promise<RoomHead>>();
  /** One shared log read per room to fill the tail with what came before it was followed. */
  private readonly priming = new Map<string, Promise<void>>();
  private readonly replays = new ReplayFrames();

  constructor(private readonly o: RoomsOptions) {}

  /**
   * Joins `c` to the room: `joined`, then the replay when recovering, then live batches.
   * Resolves with `recovered` (undefined without `since`). Throws WireError.
   */
  async join(c: Connection, req: JoinRequest, guard: JoinGuard): Promise<boolean | undefined> {
    const { room } = req;
    await this.ensureFollowed(room);
    try {
      if (req.since !== undefined) await this.deliveredUpTo(room, req.since, req.epoch, guard);
      else if (req.last) {
        const head = this.o.pipeline.lastDelivered(room);
        if (head && this.o.pipeline.recent.needsPrime(room, head, req.last)) await this.prime(room, head);
      }
      guard.check(); // after the waits, right before the member is added: a kick may have come meanwhile
    } catch (err) {
      this.release(room);
      throw err;
    }
    const last = this.o.pipeline.lastDelivered(room);
    if (!last) throw new WireError('UNAVAILABLE', 'room is not followed');
    guard.joined();
    const members = () => Math.max(this.o.bus.members(room), this.o.membership.count(room));
    const recoverable = req.since !== undefined && this.recoverable(last, req.since, req.epoch);
    if (req.since === undefined && req.last) {
      // Like a recovery: a member, subscribed once the tail is out and nothing came in between.
      c.unsubscribe(room);
      this.o.membership.join(c, room);
      c.send({ op: 'joined', ref: req.ref, room, epoch: last.epoch, seq: last.seq, members: members() });
      for (const f of this.tailFrames(room, last, req.last)) {
        if (!(await this.drainedWithin(c))) {
          c.close(CLOSE.TOO_SLOW, 'replay made no progress; reconnect and recover');
          return undefined;
        }
        if (!this.goesOn(c, room, guard)) return undefined;
        c.sendEncoded(frameBytes(f, c.compress, this.o.compressThreshold));
      }
      await this.catchUp(c, room, last.epoch, last.seq, guard);
      return undefined;
    }
    if (req.since === undefined || !recoverable) {
      this.enter(c, room);
      const recovered = req.since === undefined ? undefined : false;
      c.send({ op: 'joined', ref: req.ref, room, epoch: last.epoch, seq: last.seq, members: members(), recovered });
      return recovered;
    }
    // Recovering: a member of the room (so it stays followed) but not subscribed until the
    // replay caught up — also when re-joining to fill a gap, so live batches never interleave.
    c.unsubscribe(room);
    this.o.membership.join(c, room);
    c.send({ op: 'joined', ref: req.ref, room, epoch: last.epoch, seq: last.seq, members: members(), recovered: true });
    await this.catchUp(c, room, last.epoch, req.since, guard);
    return true;
  }

  leave(c: Connection, room: string): void {
    if (!c.rooms.has(room)) throw new WireError('NOT_JOINED');
    c.unsubscribe(room);
    if (this.o.membership.leave(c, room)) this.unfollow(room);
  }

  /** The connection closed: it is out of all its rooms. */
  dropped(c: Connection): void {
    for (const room of this.o.membership.removeConnection(c)) this.unfollow(room);
  }

  /** Member and subscribed to live batches (idempotent for a member re-joining). */
  private enter(c: Connection, room: string): void {
    if (!c.subscribed(room)) c.subscribe(room);
    this.o.membership.join(c, room);
  }

  /**
   * A member moving from another worker (after a crash or a drain) may have seen seqs this
   * worker has not read from the bus yet; wait briefly until it has, rather than answer
   * recovered:false for a gap that does not exist.
   */
  private async deliveredUpTo(room: string, since: number, epoch: string | undefined, guard: JoinGuard): Promise<void> {
    const behind = () => {
      const last = this.o.pipeline.lastDelivered(room);
      return last !== undefined && (epoch === undefined || epoch === last.epoch) && last.seq < since;
    };
    if (!behind()) return;
    // Wait only for entries the log already holds: a `since` beyond its head is no gap in
    // flight but a made-up seq, answered recovered:false at once.
    let head: RoomHead;
    try {
      head = await this.o.bus.head(room);
    } catch {
      return;
    }
    if (since > head.seq || head.epoch !== this.o.pipeline.lastDelivered(room)?.epoch) return;
    const deadline = Date.now() + AHEAD_WAIT_MS;
    while (behind() && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      guard.check();
    }
  }

  private recoverable(last: RoomHead, since: number, epoch: string | undefined): boolean {
    return (epoch === undefined || epoch === last.epoch) && since <= last.seq && last.seq - since <= this.o.maxReplay;
  }

  /**
   * Sends the log after `since` until it reaches the last delivered seq, then subscribes —
   * in one synchronous step, so live batches continue exactly after the replay. If the log
   * can no longer fill the gap (trimmed while a slow member read), it subscribes anyway: the
   * member sees the gap and re-joins, getting recovered:false.
   */
  private async catchUp(c: Connection, room: string, epoch: string, since: number, guard: JoinGuard): Promise<void> {
    let after = since;
    for (;;) {
      if (!this.goesOn(c, room, guard)) return;
      const last = this.o.pipeline.lastDelivered(room);
      if (!last || last.epoch !== epoch || after >= last.seq) return this.enter(c, room);
      let res;
      try {
        res = await this.o.bus.range(room, after, Math.min(RANGE_PAGE, last.seq - after));
      } catch {
        return this.enter(c, room); // the bus is down; live batches (and a later re-join) take over
      }
      const next = res.entries.filter((e) => e.seq > after);
      if (res.epoch !== epoch || res.oldest > after + 1 || next[0]?.seq !== after + 1) return this.enter(c, room);
      for (const frame of chunks(next)) {
        if (!(await this.drainedWithin(c))) return c.close(CLOSE.TOO_SLOW, 'replay made no progress; reconnect and recover');
        if (!this.goesOn(c, room, guard)) return;
        const f = this.replays.get(room, epoch, frame);
        c.sendEncoded(frameBytes(f, c.compress, this.o.compressThreshold));
        after = frame[frame.length - 1]!.seq;
      }
    }
  }

  /** Whether a replay (or tail) to `c` may go on: still in the room, not replaced, kicked or closed. */
  private goesOn(c: Connection, room: string, guard: JoinGuard): boolean {
    try {
      guard.check();
      return c.rooms.has(room);
    } catch {
      return false; // replaced by a newer join, kicked or closed: that path takes over
    }
  }

  /** Reads the log before the room was followed into the pipeline's tail; joiners of a room share one read. */
  private prime(room: string, head: RoomHead): Promise<void> {
    let pending = this.priming.get(room);
    if (!pending) {
      pending = this.o.bus
        .range(room, Math.max(0, head.seq - MAX_LAST), MAX_LAST)
        .then(
          (res) => {
            if (this.o.pipeline.lastDelivered(room)) this.o.pipeline.recent.prime(room, res.epoch, res.entries);
          },
          () => undefined, // the bus is down: joiners get the part of the tail this worker holds
        )
        .finally(() => this.priming.delete(room));
      this.priming.set(room, pending);
    }
    return pending;
  }

  /** The last `n` entries up to `upTo` as replay frames, each encoded once for every joiner that takes it. */
  private tailFrames(room: string, upTo: RoomHead, n: number): EncodedFrame[] {
    return [...chunks(this.o.pipeline.recent.tail(room, upTo, n))].map((entries) => this.replays.get(room, upTo.epoch, entries));
  }

  /** Whether the member's socket drained within replayStallMs. */
  private async drainedWithin(c: Connection): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<false>((resolve) => (timer = setTimeout(resolve, this.o.replayStallMs, false)));
    try {
      return await Promise.race([c.drained(this.o.replayBufferBytes).then(() => true), stalled]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async ensureFollowed(room: string): Promise<void> {
    if (this.o.pipeline.lastDelivered(room)) return;
    let pending = this.following.get(room);
    if (!pending) {
      pending = this.o.bus.follow(room);
      this.following.set(room, pending);
      pending.then(
        (head) => {
          this.following.delete(room);
          if (!this.o.pipeline.lastDelivered(room)) this.o.pipeline.followed(room, head);
        },
        () => this.following.delete(room),
      );
    }
    try {
      await pending;
    } catch {
      throw new WireError('UNAVAILABLE', 'room log unreachable');
    }
  }

  /** Followed for a join that was abandoned: stop following if nobody else is here. */
  private release(room: string): void {
    if (!this.o.membership.has(room)) this.unfollow(room);
  }

  private unfollow(room: string): void {
    this.o.bus.unfollow(room);
    this.o.pipeline.unfollowed(room);
  }

}

/** Splits consecutive entries into replay frames of bounded size. */
function* chunks(entries: readonly LogEntry[]): Generator<LogEntry[]> {
  for (let i = 0; i < entries.length; ) {
    const n = frameLength(entries, i, REPLAY_MAX_ENTRIES, REPLAY_FRAME_BYTES);
    yield entries.slice(i, i + n);
    i += n;
  }
}
