// Joining and leaving rooms: following a room on the bus while it has local members, and
// recovery — replaying the log after `since` so a joiner's stream has no gap before the
// live batches that follow.
import type { Bus, LogEntry, RoomHead } from '../bus/bus.js';
import { WireError } from '../protocol/errors.js';
import { compressFrame, encodeFrame } from '../protocol/codec.js';
import type { Connection } from '../rooms/connection.js';
import type { Membership } from '../rooms/membership.js';
import { mergeBatch, type TickPipeline } from '../tick/pipeline.js';

export interface RoomsOptions {
  bus: Bus;
  membership: Membership;
  pipeline: TickPipeline;
  /** Largest recovery replay, in log entries (beyond it: recovered:false). */
  maxReplay: number;
  compressThreshold: number;
}

export interface JoinRequest {
  room: string;
  since?: number;
  epoch?: string;
  ref?: number;
}

const REPLAY_CHUNK = 100; // log entries per replayed batch frame
const RANGE_ATTEMPTS = 3;

export class Rooms {
  private readonly following = new Map<string, Promise<RoomHead>>();

  constructor(private readonly o: RoomsOptions) {}

  /** Subscribes `c` to the room and sends `joined` (and the replay); throws WireError. */
  async join(c: Connection, req: JoinRequest, isOpen: () => boolean): Promise<void> {
    const { room } = req;
    await this.ensureFollowed(room);
    let replay: LogEntry[] | undefined;
    let recovered: boolean | undefined;
    if (req.since !== undefined) {
      replay = await this.recoverable(room, req.since, req.epoch);
      recovered = replay !== undefined;
    }
    if (!isOpen()) {
      this.release(room);
      return;
    }
    // From here on everything is synchronous: the replay reaches exactly the last seq
    // delivered, and live batches published after this point continue from it.
    const last = this.o.pipeline.lastDelivered(room);
    if (!last) throw new WireError('UNAVAILABLE', 'room is not followed');
    const wasMember = c.rooms.has(room);
    this.o.membership.join(c, room);
    if (!wasMember) c.subscribe(room);
    const members = Math.max(this.o.bus.members(room), this.o.membership.membersOf(room).size);
    c.send({ op: 'joined', ref: req.ref, room, epoch: last.epoch, seq: last.seq, members, recovered });
    if (replay) this.sendReplay(c, room, last.epoch, replay.filter((e) => e.seq <= last.seq));
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

  /** Entries after `since` up to at least the last delivered seq, or undefined if the log cannot fill the gap. */
  private async recoverable(room: string, since: number, epoch: string | undefined): Promise<LogEntry[] | undefined> {
    const entries: LogEntry[] = [];
    let after = since;
    for (let attempt = 0; attempt < RANGE_ATTEMPTS; attempt++) {
      const last = this.o.pipeline.lastDelivered(room);
      if (!last || (epoch !== undefined && epoch !== last.epoch) || since > last.seq) return undefined;
      if (after >= last.seq) return entries;
      if (last.seq - since > this.o.maxReplay) return undefined;
      let res;
      try {
        res = await this.o.bus.range(room, after, last.seq - after);
      } catch {
        throw new WireError('UNAVAILABLE', 'room log unreachable');
      }
      if (res.epoch !== last.epoch || res.oldest > since + 1) return undefined;
      for (const e of res.entries) if (e.seq === after + 1) {
        entries.push(e);
        after = e.seq;
      }
      if (res.head <= after) break;
    }
    const last = this.o.pipeline.lastDelivered(room);
    return last && after >= last.seq ? entries : undefined;
  }

  private sendReplay(c: Connection, room: string, epoch: string, entries: LogEntry[]): void {
    for (let i = 0; i < entries.length; i += REPLAY_CHUNK) {
      const frame = mergeBatch(room, epoch, entries.slice(i, i + REPLAY_CHUNK));
      if (c.compress) {
        const plain = encodeFrame(frame);
        if (plain.byteLength > this.o.compressThreshold) {
          c.sendEncoded(compressFrame(plain));
          continue;
        }
      }
      c.send(frame);
    }
  }
}
