// Per-room sequence state: what the app has been given of each room's log, and the rules
// that keep it in order and exactly once per seq — duplicates dropped, gaps held while the
// missing range is fetched again (a join with `since`), epoch changes reported as resets.
import type { Clock, TimerHandle } from './clock.js';
import type { RoomcastError } from './errors.js';
import type { Batch, ClientEvents, Frame, JoinResult, Msg } from './types.js';

export type JoinReason = 'user' | 'resume' | 'gap';

export interface QueuedBatch {
  epoch: string;
  from: number;
  to: number;
  msgs: Msg[];
  likes: number;
}

export interface RoomState {
  room: string;
  epoch?: string;
  /** last seq delivered to the app */
  lastSeq?: number;
  members?: number;
  /** joined at least once (so a failure to rejoin is reported, not thrown) */
  everJoined: boolean;
  /** joined on the current connection */
  active: boolean;
  /** the connection a join is in flight on, its ref (none for the URL join), since and why */
  joinGen?: number;
  joinRef?: number;
  joinSince?: number;
  joinReason?: JoinReason;
  joinRetry?: TimerHandle;
  joinFailures: number;
  waiters: Array<{ resolve: (r: JoinResult) => void; reject: (e: RoomcastError) => void }>;
  /** requests waiting for the join in flight on the current connection */
  deferred: Array<() => void>;
  /** live batches that arrived after a gap, ordered by `from` */
  queue: QueuedBatch[];
  /**
   * Set by a `joined` with recovered:true while the replay has not reached its seq. The
   * server holds live batches back from a re-joining member until its replay caught up,
   * but batches already on the wire arrive around the replay, and the replay may run past
   * that seq; so until it is caught up, gaps and overlaps are held in the queue rather
   * than answered with another join.
   */
  catchUp?: { until: number; stall?: TimerHandle };
  /** Recent entries a first join asks for (`last`); none on rejoins, which use `since`. */
  last?: number;
  /** Set by a `joined` answering a join with `last`: the recent batches up to this seq follow. */
  tailUntil?: number;
  mutedUntil: number;
  roomMutedUntil: number;
}

export function newRoom(room: string): RoomState {
  return { room, everJoined: false, active: false, joinFailures: 0, waiters: [], deferred: [], queue: [], mutedUntil: 0, roomMutedUntil: 0 };
}

export interface RoomSeqOptions {
  clock: Clock;
  maxQueuedBatches: number;
  recoveryStallMs: number;
  emit<K extends 'batch' | 'gap' | 'reset' | 'error'>(event: K, payload: ClientEvents[K]): void;
  /** Whether `r` is still the client's state for its room. */
  current(r: RoomState): boolean;
  /** Rejoin with since = the last delivered seq. */
  rejoin(r: RoomState): void;
  protocolError(message: string, room: string): RoomcastError;
}

export class RoomSeq {
  constructor(private readonly o: RoomSeqOptions) {}

  /**
   * A `joined` answering a join that asked from `asked` (undefined: a fresh join): the
   * stream continues after `seq`, through a replay when `recovered`, else with a reset.
   */
  joined(r: RoomState, asked: number | undefined, recovered: boolean | undefined, epoch: string, seq: number): void {
    this.endCatchUp(r);
    r.tailUntil = undefined;
    if (asked !== undefined && recovered === true) {
      // The replay (asked+1 .. at least seq) follows as batch frames.
      r.epoch = epoch;
      r.queue = r.queue.filter((b) => b.epoch === epoch);
      if ((r.lastSeq ?? asked) < seq) {
        r.catchUp = { until: seq };
        this.armStall(r);
      }
    } else if (asked !== undefined) {
      const previousEpoch = r.epoch;
      const previousSeq = r.lastSeq;
      r.epoch = epoch;
      r.lastSeq = seq;
      r.queue = r.queue.filter((b) => b.epoch === epoch && b.to > seq);
      const ev: ClientEvents['reset'] = { room: r.room, epoch, seq, reason: 'not-recovered' };
      if (previousEpoch !== undefined) ev.previousEpoch = previousEpoch;
      if (previousSeq !== undefined) ev.previousSeq = previousSeq;
      this.o.emit('reset', ev);
    } else {
      r.epoch = epoch;
      r.lastSeq = seq;
      r.queue = [];
      // The recent entries (before `seq`) come next, then the stream continues after `seq`.
      if (r.last && seq > 0) r.tailUntil = seq;
    }
  }

  batch(r: RoomState, f: Frame): void {
    if (r.lastSeq === undefined || (!r.active && r.joinGen === undefined)) return;
    const room = r.room;
    const b: QueuedBatch = {
      epoch: str(f.epoch),
      from: num(f.from),
      to: num(f.to),
      msgs: Array.isArray(f.msgs) ? (f.msgs as Msg[]) : [],
      likes: typeof f.likes === 'number' ? f.likes : 0,
    };
    if (!Number.isSafeInteger(b.from) || !Number.isSafeInteger(b.to) || b.to < b.from) {
      this.o.emit('error', this.o.protocolError(`batch with a bad range ${String(f.from)}..${String(f.to)}`, room));
      return;
    }
    if (r.epoch !== undefined && b.epoch !== r.epoch) {
      if (r.joinGen !== undefined) return this.enqueue(r, b); // a rejoin in flight will settle the epoch
      const ev: ClientEvents['reset'] = { room, epoch: b.epoch, seq: b.from - 1, reason: 'epoch-changed', previousEpoch: r.epoch, previousSeq: r.lastSeq };
      r.epoch = b.epoch;
      r.lastSeq = b.from - 1;
      r.queue = [];
      this.endCatchUp(r);
      this.o.emit('reset', ev);
    }
    r.epoch ??= b.epoch;
    if (r.tailUntil !== undefined) {
      const tail = b.epoch === r.epoch && b.to <= r.tailUntil;
      if (!tail || b.to === r.tailUntil) r.tailUntil = undefined;
      // History from before the join: handed over as replay, the position stays at `seq`.
      if (tail) return this.o.emit('batch', { room, epoch: b.epoch, from: b.from, to: b.to, msgs: b.msgs, likes: b.likes, replay: true });
    }
    const last = r.lastSeq!;
    if (b.to <= last) return; // a duplicate (already delivered)
    if (b.from !== last + 1) {
      // A gap, or an overlap with what was delivered (a batch cannot be split by seq):
      // hold it; outside a catch-up, rejoin with since = last to fetch what is missing.
      if (b.from > last + 1 && r.queue.length === 0 && r.joinGen === undefined && !r.catchUp) {
        this.o.emit('gap', { room, expected: last + 1, got: b.from });
      }
      this.enqueue(r, b);
      if (!r.catchUp) this.recover(r);
      return;
    }
    this.deliver(r, b);
    this.drain(r);
  }

  /**
   * Delivers queued batches that now follow on. While catching up, whatever does not follow
   * on yet waits for the replay; otherwise a remaining gap or overlap starts a recovery.
   */
  drain(r: RoomState): void {
    while (r.queue.length > 0 && this.o.current(r)) {
      const head = r.queue[0]!;
      const last = r.lastSeq!;
      if (head.epoch !== r.epoch || head.to <= last) {
        r.queue.shift();
        continue;
      }
      if (head.from === last + 1) {
        r.queue.shift();
        this.deliver(r, head);
        continue;
      }
      if (!r.catchUp) this.recover(r);
      return;
    }
    const cu = r.catchUp;
    if (cu && r.queue.length === 0 && (r.lastSeq ?? 0) >= cu.until) this.endCatchUp(r);
  }

  /** The room's connection is gone (or the room is forgotten): nothing is in flight for it. */
  clear(r: RoomState): void {
    r.queue = [];
    r.tailUntil = undefined;
    this.endCatchUp(r);
  }

  private deliver(r: RoomState, b: QueuedBatch): void {
    r.lastSeq = b.to;
    const replay = r.catchUp !== undefined && b.to <= r.catchUp.until;
    if (r.catchUp) this.armStall(r);
    const batch: Batch = { room: r.room, epoch: b.epoch, from: b.from, to: b.to, msgs: b.msgs, likes: b.likes, replay };
    this.o.emit('batch', batch);
  }

  /** (Re)starts the timer that gives up on a catch-up replay that stopped delivering. */
  private armStall(r: RoomState): void {
    const cu = r.catchUp;
    if (!cu) return;
    if (cu.stall !== undefined) this.o.clock.clearTimeout(cu.stall);
    cu.stall = this.o.clock.setTimeout(() => {
      if (r.catchUp !== cu) return;
      cu.stall = undefined;
      const stuck = r.queue.length > 0 || (r.lastSeq ?? 0) < cu.until;
      this.endCatchUp(r);
      if (stuck && this.o.current(r) && r.active) this.recover(r);
    }, this.o.recoveryStallMs);
  }

  private endCatchUp(r: RoomState): void {
    if (r.catchUp?.stall !== undefined) this.o.clock.clearTimeout(r.catchUp.stall);
    r.catchUp = undefined;
  }

  private enqueue(r: RoomState, b: QueuedBatch): void {
    let i = r.queue.length;
    while (i > 0 && r.queue[i - 1]!.from > b.from) i--;
    r.queue.splice(i, 0, b);
    // The recovery replay covers what is dropped here; only memory is at stake.
    if (r.queue.length > this.o.maxQueuedBatches) r.queue.shift();
  }

  /** Rejoins with since = the last delivered seq (once per gap: not while a join is in flight). */
  private recover(r: RoomState): void {
    if (r.joinGen !== undefined || r.joinRetry !== undefined || r.catchUp) return;
    this.o.rejoin(r);
  }
}

export function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

export function num(v: unknown): number {
  return typeof v === 'number' ? v : Number.NaN;
}
