// The business-event hub a worker feeds with one-line calls (an append, a member joining or
// leaving): it builds the events, sums joins and leaves per room between flushes, follows
// each room's life (started, peak, ended) and hands everything to one dispatcher per sink.
// Every call is O(1) and synchronous; delivery runs on its own timer, never in the tick.
import type { EntryBody, RoomHead } from '../bus/bus.js';
import { Dispatcher, type DispatcherOptions } from './dispatcher.js';
import type { EventSink, RoomEvent } from './types.js';

/** Hooks of rooms/membership.ts. */
export interface MemberEvents {
  joined(room: string, uid: string): void;
  left(room: string, uid: string): void;
}

/** Hook of the tick pipeline: an entry this worker appended. */
export interface AppendEvents {
  appended(room: string, head: RoomHead, entry: EntryBody): void;
}

export interface RoomEventsOptions extends Omit<DispatcherOptions, 'sink' | 'onError'> {
  sinks: EventSink[];
  flushMs: number;
  historyTtlMs: number;
  /** The room's member count as this worker sees it cluster-wide (including its own). */
  members: (room: string) => number;
  /** Members on other workers, as last reported (this worker's joins not yet included). */
  othersMembers: (room: string) => number;
  onError: (sink: string, err: unknown) => void;
}

/** uids named per members.changed event; the counts cover everyone. */
const SAMPLE = 20;
/** Longest a drain waits for the last events to be delivered. */
const SETTLE_MS = 3000;

interface Churn {
  joined: number;
  left: number;
  sample: { joined: string[]; left: string[] };
}

interface Life {
  startedAt: number;
  peak: number;
  hadMembers: boolean;
  lastAppend: number;
}

export class RoomEvents implements MemberEvents, AppendEvents {
  private readonly dispatchers: Dispatcher[];
  private churn = new Map<string, Churn>();
  /** Rooms this worker saw start; it alone reports their end (cluster-wide counts). */
  private readonly life = new Map<string, Life>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: RoomEventsOptions) {
    this.dispatchers = o.sinks.map((sink) => new Dispatcher({ ...o, sink, onError: (err) => o.onError(sink.name, err) }));
  }

  appended(room: string, head: RoomHead, entry: EntryBody): void {
    const t = this.o.now();
    // seq 1 is a new log: exactly one append in the cluster gets it.
    if (head.seq === 1 && !this.life.has(room)) this.started(room, 'message', t);
    const life = this.life.get(room);
    if (life) life.lastAppend = t;
    this.emit({ type: 'message.appended', room, epoch: head.epoch, seq: head.seq, ts: entry.ts, msgs: entry.msgs, likes: entry.likes });
  }

  joined(room: string, uid: string): void {
    const c = this.churnOf(room);
    c.joined++;
    if (c.sample.joined.length < SAMPLE) c.sample.joined.push(uid);
    if (!this.life.has(room) && this.o.othersMembers(room) === 0) this.started(room, 'member', this.o.now());
    const life = this.life.get(room);
    if (life) {
      life.hadMembers = true;
      life.peak = Math.max(life.peak, this.o.members(room));
    }
  }

  left(room: string, uid: string): void {
    const c = this.churnOf(room);
    c.left++;
    if (c.sample.left.length < SAMPLE) c.sample.left.push(uid);
  }

  start(): void {
    this.timer = setInterval(() => this.flush(), this.o.flushMs);
    this.timer.unref();
  }

  /** Flushes what is pending and waits (briefly) for it to be delivered; the rest counts as dropped. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.flush();
    await Promise.all(this.dispatchers.map((d) => d.settle(SETTLE_MS)));
    for (const d of this.dispatchers) d.abandon();
    await Promise.all(this.o.sinks.map((s) => s.close()));
  }

  /** Once per flush interval: member churn and room lifecycle become events, then every sink sends. */
  private flush(): void {
    const t = this.o.now();
    const churn = this.churn;
    this.churn = new Map();
    for (const [room, c] of churn) {
      this.emit({ type: 'members.changed', room, ts: t, joined: c.joined, left: c.left, members: this.o.members(room), sample: c.sample });
    }
    for (const [room, life] of this.life) {
      const n = this.o.members(room);
      life.peak = Math.max(life.peak, n);
      if (n > 0) {
        life.hadMembers = true;
        continue;
      }
      const expired = t - life.lastAppend >= this.o.historyTtlMs;
      if (!life.hadMembers && !expired) continue;
      this.life.delete(room);
      this.emit({ type: 'room.ended', room, ts: t, reason: life.hadMembers ? 'empty' : 'expired', startedAt: life.startedAt, peak: life.peak });
    }
    for (const d of this.dispatchers) d.flush();
  }

  private started(room: string, cause: 'member' | 'message', t: number): void {
    this.life.set(room, { startedAt: t, peak: 0, hadMembers: false, lastAppend: t });
    this.emit({ type: 'room.started', room, ts: t, cause });
  }

  private churnOf(room: string): Churn {
    let c = this.churn.get(room);
    if (!c) this.churn.set(room, (c = { joined: 0, left: 0, sample: { joined: [], left: [] } }));
    return c;
  }

  private emit(e: RoomEvent): void {
    for (const d of this.dispatchers) d.add(e);
  }
}
