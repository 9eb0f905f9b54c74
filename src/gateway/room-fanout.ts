// One room's fan-out on this worker. Its local subscribers are spread over topic shards of at
// most `shardSize` members (`fanoutShardMembers`, 500 by default; 0 = one shard), and a
// frame is written over as few event-loop turns as fit its shards in `sliceMs`
// (`fanoutSliceMs`) each: a socket write costs ~10 µs, so a pass over 17k members holds the
// loop for ~200 ms of CPU, and seconds on a starved box (60 workers on 2 cores at 1M), while
// API requests, pongs and acks wait. Between turns they are served. A turn's cost is known only
// at the next one (uWS writes a publish when the turn ends), so a room's first turn writes one
// shard, and each later one as many as the measured wall time per member fits in the slice: on
// a starved box one shard per turn, which kept the 1M steady phase answering POSTs, and on a
// quiet one the whole pass in one turn, as raw uWS does (one shard per turn cost a room of 18k
// ×1.5–2.4 its p99; bench/notes/big-room.md). Frames of a room go out in order: the next one starts once the previous one reached
// every shard. A member that subscribes while frames are queued or being written waits for the
// last of them to finish: what it joined with (its `joined` seq, its replay) already covers them.
import type { EncodedFrame } from '../protocol/codec.js';
import type { Delivered } from '../rooms/connection.js';
import { talkShare } from './member-talk.js';
import { afterNextPoll } from '../util/loop-phase.js';

/**
 * Its `z` form is made (frameBytes) at the first shard that has a member that asked for
 * compressed frames, so a room where none did never deflates (each frame over 1 KiB was, ~0.3 %
 * of a 5k room's loop; bench/notes/big-room.md, session 20).
 */
export interface FanoutFrame extends EncodedFrame {
  /** Called once every shard has it (synchronously when the room has one shard). */
  done?: (d: Delivered) => void;
}

/** A subscriber, as the fan-out sees it. */
export interface ShardMember {
  /** Its shard of `room`: -1 while it waits for a pass to end, undefined when not subscribed. */
  shardIn(room: string): number | undefined;
  /** Subscribes it to `shard` of `room` (it was waiting). */
  enterShard(room: string, shard: number): void;
}

/** What the gateway does for the fan-out: the uWS side of one shard's publish. */
export interface ShardHost<M extends ShardMember> {
  /** Sockets holding replies to write with this room's next frame (taken once per pass). */
  takeRiders(room: string): M[] | undefined;
  /** A turn of the room's pass begins: publishShard calls for its shards follow in the same synchronous run. */
  turnStarted(room: string): void;
  /** Publishes to one shard; its riders get the frame and their replies in one write. */
  publishShard(room: string, shard: number, frame: FanoutFrame, riders: readonly M[] | undefined): Delivered;
  /** The room has no subscriber and nothing queued: its fan-out can go. */
  idle(room: string): void;
  /** A shard's publish threw: reported, and the pass goes on (a stuck pass would hold the room's frames for good). */
  failed(room: string, err: unknown): void;
}

/**
 * The wall time a turn may take: `sliceMs` while the members only listen, down to one shard per
 * turn once they talk at a quarter of a storm (member-talk.ts). Under a storm of chat and likes
 * their pings and acks are answered between shards; a room that listens gets its frame at once,
 * as from a bare uWS server. Steep, because a storm's passes cost several times what the quiet
 * turns measured (most members hold an ack to write with the frame, and the generators take half
 * the cores): read linearly, a storm's first second wrote passes of ~6k members in one turn of
 * 150–300 ms (bench/notes/storm.md, session 16).
 */
export function sliceFor(sliceMs: number, talk: number): number {
  return sliceMs * (1 - talkShare(talk));
}

/**
 * What a socket write costs beyond its bytes, in bytes (~10 µs of system call at the ~1.5 GB/s
 * this box writes): a turn's cost is predicted per member and per byte of its frame, so a frame
 * much bigger than the ones timed goes over as many more turns. Timed per member alone, the 240 KB
 * frames of the 18k collapse, after 15 KB ones, would go to every member in one turn lasting
 * seconds, with the tick (and so its next entry) waiting behind it (bench/notes/big-room.md, session 17).
 */
export const WRITE_OVERHEAD_BYTES = 16 * 1024;

interface Pass {
  frame: FanoutFrame;
  /** Members that subscribed while this frame was queued or being written. */
  joiners?: ShardMember[];
}

export class RoomFanout<M extends ShardMember> {
  /** Subscribers per shard. */
  private readonly sizes: number[] = [];
  private members = 0;
  private readonly queue: Pass[] = [];
  /** The frame being written; `busy` also covers the turn between two queued frames. */
  private current: Pass | undefined;
  private busy = false;

  /**
   * Measured wall time of a turn per member and weighted byte (its frame's bytes plus
   * WRITE_OVERHEAD_BYTES; 0: not measured yet), and the turn being timed.
   */
  private msPerUnit = 0;
  private turnAt = 0;
  private turnUnits = 0;

  constructor(
    readonly room: string,
    private readonly host: ShardHost<M>,
    private readonly shardSize: number,
    /** Wall time a turn of a pass may take now (sliceFor); 0 = one shard per turn. */
    private readonly sliceMs: () => number,
  ) {}

  get shards(): number {
    return this.sizes.length;
  }

  /** The shard a new subscriber goes to, or -1: it waits for the frames in hand (enterShard follows). */
  join(m: M): number {
    if (!this.busy) return this.place();
    const last = this.queue[this.queue.length - 1] ?? this.current!;
    (last.joiners ??= []).push(m);
    return -1;
  }

  /** A subscriber of `shard` left (or closed). */
  left(shard: number): void {
    if (shard < 0) return;
    this.sizes[shard]!--;
    this.members--;
    while (this.sizes.length > 0 && this.sizes[this.sizes.length - 1] === 0) this.sizes.pop();
    if (this.members === 0 && !this.busy) this.host.idle(this.room);
  }

  publish(frame: FanoutFrame): void {
    this.queue.push({ frame });
    if (!this.busy) this.next();
  }

  /** Fills the lowest shard with room: shards emptied by leaves fill up again before a new one opens. */
  private place(): number {
    let shard = this.sizes.findIndex((n) => n < this.shardSize);
    if (shard === -1) shard = this.sizes.push(0) - 1;
    this.sizes[shard]!++;
    this.members++;
    return shard;
  }

  private readonly next = (): void => {
    const pass = this.queue.shift();
    if (!pass) return;
    this.busy = true;
    this.current = pass;
    const riders = this.members > 0 ? this.ridersByShard() : undefined;
    const total: Delivered = { receivers: 0, bytes: 0 };
    let shard = 0;
    const weight = WRITE_OVERHEAD_BYTES + pass.frame.plain.byteLength;
    const step = (later: boolean): void => {
      // A later step's turn follows the one that wrote the previous shards (the first step may
      // share its turn with the end of the previous pass, whose writes have not happened yet).
      if (later) this.timeTurn();
      const at = performance.now();
      // At least one shard a turn; more while the measured cost says they fit in the slice.
      const fit = this.msPerUnit > 0 ? this.sliceMs() / (this.msPerUnit * weight) : 0;
      let members = 0;
      this.host.turnStarted(this.room);
      do {
        if (shard < this.sizes.length) {
          members += this.sizes[shard]!;
          try {
            const d = this.host.publishShard(this.room, shard, pass.frame, riders?.get(shard));
            total.receivers += d.receivers;
            total.bytes += d.bytes;
          } catch (err) {
            this.host.failed(this.room, err);
          }
        }
      } while (++shard < this.sizes.length && members + this.sizes[shard]! <= fit);
      if (this.sizes.length > 1) this.startTurn(at, members * weight);
      if (shard < this.sizes.length) return void (later ? setImmediate(step, true) : afterNextPoll(() => step(true)));
      if (this.turnUnits > 0) setImmediate(this.timeTurn); // the pass's last turn
      this.current = undefined;
      for (const m of pass.joiners ?? []) if (m.shardIn(this.room) === -1) m.enterShard(this.room, this.place());
      if (this.queue.length > 0) setImmediate(this.next);
      else {
        this.busy = false;
        if (this.members === 0) this.host.idle(this.room);
      }
      pass.frame.done?.(total);
    };
    step(false);
  };

  private startTurn(at: number, units: number): void {
    this.turnAt = at;
    this.turnUnits = units;
  }

  /** Ends the turn being timed: its wall time, the writes uWS made when it ended included. */
  private readonly timeTurn = (): void => {
    if (this.turnUnits === 0) return;
    const perUnit = (performance.now() - this.turnAt) / this.turnUnits;
    this.msPerUnit = this.msPerUnit === 0 ? perUnit : (this.msPerUnit + perUnit) / 2;
    this.turnUnits = 0;
  };

  private ridersByShard(): Map<number, M[]> | undefined {
    const riders = this.host.takeRiders(this.room);
    if (!riders) return undefined;
    const by = new Map<number, M[]>();
    for (const r of riders) {
      const shard = r.shardIn(this.room)!;
      const list = by.get(shard);
      if (list) list.push(r);
      else by.set(shard, [r]);
    }
    return by;
  }
}
