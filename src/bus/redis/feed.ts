// The live feed: a worker reads the partition streams that hold the rooms it follows (one
// XREAD over all of them on one Redis; a reader per partition on a Cluster, where one XREAD
// cannot span slots) and drops other rooms' entries by room id before decoding anything.
// Redis work is per message and per worker, flat in the number of rooms. A room's seqs are
// contiguous: a gap (a reader that fell behind its partition's MAXLEN, a reconnect) is filled
// from the room's own log, and an epoch change is reported, so onEntries never skips.
import type { Logger } from 'pino';
import type { BusEvents, BusHandler, LiveFeed, LogEntry, RoomHead } from '../bus.js';
import { backoffMs } from '../../util/backoff.js';
import type { Keys } from './keys.js';
import { toEntry, type FollowHead, type RedisRoomLog } from './room-log.js';
import type { StreamItem } from './stream-reader.js';

/** Epochs a followed room remembers as superseded (entries tagged with them are stale). */
const RETIRED_EPOCHS = 4;
/** Entries held per room while its head or a gap fill is pending; beyond, the fill catches up. */
const BUFFER_MAX = 5000;
/** Log entries fetched per gap-fill read. */
const FILL_PAGE = 500;
/** Extra tries of a follow's head read before the join gets UNAVAILABLE. */
const HEAD_RETRIES = 2;

interface Raw {
  seq: number;
  epoch: string;
  body: Buffer | undefined;
}

/** A followed room: where its delivery stands. A re-follow makes a new object. */
interface Follow {
  partition: number;
  epoch: string;
  /** Last seq delivered to onEntries. */
  seq: number;
  ready: boolean;
  pending: Promise<RoomHead>;
  retired: string[];
  /** Entries read while the head or a gap fill is pending. */
  buffer: Raw[];
  filling: boolean;
}

/** Hands out the reader of a partition stream; the feed tells it which keys it needs. */
export interface ReaderPool {
  add(key: string, fromId: string): void;
  remove(key: string): void;
}

export interface PartitionFeedOptions {
  log: RedisRoomLog;
  keys: Keys;
  events: BusEvents;
  logger?: Logger;
}

export class PartitionFeed implements LiveFeed {
  private readonly followed = new Map<string, Follow>();
  /** Followed rooms per partition: a partition is read while it has any. */
  private readonly perPartition = new Map<number, number>();
  private handler: BusHandler | undefined;
  private readers: ReaderPool | undefined;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;
  /** The last seq this worker appended per followed room, until it is read back. */
  private readonly owedSeqs = new Map<string, number>();

  constructor(private readonly o: PartitionFeedOptions) {}

  attach(handler: BusHandler, readers: ReaderPool): void {
    this.handler = handler;
    this.readers = readers;
  }

  follow(room: string): Promise<RoomHead> {
    const existing = this.followed.get(room);
    // Already followed: delivery continues after the last delivered seq.
    if (existing) return existing.ready ? Promise.resolve({ epoch: existing.epoch, seq: existing.seq }) : existing.pending;
    const partition = this.o.keys.partitionOf(room);
    const f: Follow = { partition, epoch: '', seq: 0, ready: false, pending: Promise.resolve({ epoch: '', seq: 0 }), retired: [], buffer: [], filling: false };
    // In the map before the head is read: entries read from now on are buffered, and every
    // entry after the head lies after the stream id the head script returns.
    this.followed.set(room, f);
    this.perPartition.set(partition, (this.perPartition.get(partition) ?? 0) + 1);
    f.pending = this.headWithRetry(room).then(
      (head) => {
        if (this.followed.get(room) !== f) return { epoch: head.epoch, seq: head.seq };
        this.readers?.add(this.o.keys.stream(partition), head.streamId);
        Object.assign(f, { epoch: head.epoch, seq: head.seq, ready: true });
        const buffered = f.buffer;
        f.buffer = [];
        this.accept(room, f, buffered);
        return { epoch: head.epoch, seq: head.seq };
      },
      (err: unknown) => {
        if (this.followed.get(room) === f) this.drop(room, f);
        throw err;
      },
    );
    return f.pending;
  }

  /**
   * The head read is safe to repeat, so a slow reply (a starved Redis or worker during a
   * join storm) is retried before the join is refused as UNAVAILABLE.
   */
  private async headWithRetry(room: string): Promise<FollowHead> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.o.log.followHead(room);
      } catch (err) {
        if (attempt >= HEAD_RETRIES || this.closed) throw err;
        this.o.events.error('read');
        await new Promise((r) => setTimeout(r, backoffMs(attempt, { baseMs: 100, maxMs: 1000 })));
      }
    }
  }

  unfollow(room: string): void {
    const f = this.followed.get(room);
    if (f) this.drop(room, f);
  }

  /** This worker appended `head` to `room`: the reader reads at once until it comes back. */
  appended(room: string, head: RoomHead): void {
    const f = this.followed.get(room);
    if (!f?.ready || head.epoch !== f.epoch || head.seq <= f.seq) return;
    this.owedSeqs.set(room, Math.max(this.owedSeqs.get(room) ?? 0, head.seq));
  }

  /** Some own append is not read back yet. */
  owed(): boolean {
    return this.owedSeqs.size > 0;
  }

  private drop(room: string, f: Follow): void {
    this.followed.delete(room);
    this.owedSeqs.delete(room);
    const left = (this.perPartition.get(f.partition) ?? 1) - 1;
    if (left > 0) this.perPartition.set(f.partition, left);
    else {
      this.perPartition.delete(f.partition);
      this.readers?.remove(this.o.keys.stream(f.partition));
    }
  }

  /** A read of one partition stream: entries of followed rooms, grouped per room in order. */
  onPartition(items: StreamItem[]): void {
    let byRoom: Map<string, Raw[]> | undefined;
    for (const [, fields] of items) {
      // Field order is fixed by the append script: r, s, e, d.
      const room = fields[1]?.toString();
      if (room === undefined || !this.followed.has(room)) continue;
      const raw: Raw = { seq: Number(fields[3]?.toString()), epoch: fields[5]?.toString() ?? '', body: fields[7] };
      byRoom ??= new Map();
      const list = byRoom.get(room);
      if (list) list.push(raw);
      else byRoom.set(room, [raw]);
    }
    if (byRoom) for (const [room, raws] of byRoom) this.accept(room, this.followed.get(room)!, raws);
  }

  /**
   * Delivers what follows on from the room's last delivered seq; a later seq starts a gap fill
   * (and what comes meanwhile waits behind it); an entry of another epoch is a new log.
   */
  private accept(room: string, f: Follow, raws: Raw[]): void {
    if (!f.ready || f.filling) {
      for (const r of raws) f.buffer.push(r);
      if (f.buffer.length > BUFFER_MAX) f.buffer.splice(0, f.buffer.length - BUFFER_MAX);
      return;
    }
    let out: LogEntry[] = [];
    const flush = () => {
      if (out.length) this.deliver(room, f.epoch, out);
      out = [];
    };
    for (let i = 0; i < raws.length; i++) {
      const r = raws[i]!;
      if (f.retired.includes(r.epoch)) continue;
      if (r.epoch !== f.epoch) {
        // Appends always use the current epoch: a different one here is newer.
        flush();
        this.newEpoch(room, f, r.epoch);
      }
      if (r.seq <= f.seq) continue;
      if (r.seq > f.seq + 1) {
        flush();
        f.buffer = raws.slice(i);
        void this.fill(room, f);
        return;
      }
      out.push(toEntry(r.seq, r.body));
      f.seq = r.seq;
    }
    flush();
  }

  /** Reads the room's log from its last delivered seq on, then goes on with what waited. */
  private async fill(room: string, f: Follow): Promise<void> {
    f.filling = true;
    let failures = 0;
    while (this.followed.get(room) === f) {
      try {
        const res = await this.o.log.range(room, f.seq, FILL_PAGE);
        if (this.followed.get(room) !== f) return;
        if (res.epoch !== f.epoch && !f.retired.includes(res.epoch)) this.newEpoch(room, f, res.epoch);
        const next = res.entries.filter((e) => e.seq > f.seq);
        if (next.length) {
          // Trimmed past what we have, this starts after a gap: members see it and recover.
          this.o.events.gapFill(next.length);
          f.seq = next[next.length - 1]!.seq;
          this.deliver(room, f.epoch, next);
        } else {
          // The log has nothing to fill with (trimmed, or behind after a failover): go on
          // from what waited rather than ask again and again.
          const first = f.buffer.find((r) => r.epoch === f.epoch && r.seq > f.seq);
          if (first) f.seq = first.seq - 1;
        }
        break;
      } catch (err) {
        this.o.events.error('range');
        this.o.logger?.warn({ err, room }, 'redis bus gap fill failed; retrying');
        await new Promise((r) => setTimeout(r, backoffMs(failures++, { baseMs: 50, maxMs: 2000 })));
      }
    }
    f.filling = false;
    const waiting = f.buffer;
    f.buffer = [];
    if (this.followed.get(room) === f) this.accept(room, f, waiting);
  }

  private newEpoch(room: string, f: Follow, epoch: string): void {
    this.o.logger?.info({ room, from: f.epoch, to: epoch }, 'room log has a new epoch');
    retire(f, f.epoch);
    this.owedSeqs.delete(room);
    f.epoch = epoch;
    f.seq = 0;
    this.handler?.onEpoch?.(room, epoch);
  }

  /**
   * After a reconnect: the partition streams may have been trimmed past a reader's cursor, or
   * Redis restarted empty. Compare every followed room with its head; fill or re-epoch. Rooms
   * whose head could not be read are tried again with backoff.
   */
  async resync(rooms?: string[], attempt = 0): Promise<void> {
    if (attempt === 0) this.o.events.resubscribe();
    const failed: string[] = [];
    await Promise.all(
      (rooms ?? [...this.followed.keys()]).map(async (room) => {
        const f = this.followed.get(room);
        if (!f?.ready || f.filling) return;
        let head: RoomHead;
        try {
          head = await this.o.log.head(room);
        } catch (err) {
          failed.push(room);
          this.o.events.error('read');
          this.o.logger?.debug({ err, room }, 'redis bus resync failed; retrying');
          return;
        }
        if (this.followed.get(room) !== f || f.filling) return;
        if (head.epoch !== f.epoch && !f.retired.includes(head.epoch)) this.newEpoch(room, f, head.epoch);
        if (head.seq > f.seq) void this.fill(room, f);
      }),
    );
    if (failed.length === 0 || this.closed) return;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => void this.resync(failed, attempt + 1), backoffMs(attempt, { baseMs: 100, maxMs: 2000 }));
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
  }

  private deliver(room: string, epoch: string, entries: LogEntry[]): void {
    if ((this.owedSeqs.get(room) ?? Infinity) <= entries[entries.length - 1]!.seq) this.owedSeqs.delete(room);
    try {
      this.handler?.onEntries(room, epoch, entries);
    } catch (err) {
      this.o.logger?.error({ err, room }, 'onEntries handler threw');
    }
  }
}

function retire(f: Follow, epoch: string): void {
  if (!epoch || f.retired.includes(epoch)) return;
  f.retired.push(epoch);
  if (f.retired.length > RETIRED_EPOCHS) f.retired.shift();
}
