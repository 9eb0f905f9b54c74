// The in-memory bus of the single-process embedded default: one bounded log per room.
import { randomBytes } from 'node:crypto';
import type { AppendItem, Bus, BusHandler, ControlCommand, LogEntry, RangeResult, RoomHead } from './bus.js';

interface RoomLog {
  epoch: string;
  seq: number;
  entries: LogEntry[];
  followed: boolean;
  touched: number;
}

export interface MemoryBusOptions {
  /** Entries kept per room. */
  history: number;
  /** A room with no followers and no appends for this long forgets its log (a new epoch). */
  idleRoomMs?: number;
  now?: () => number;
}

export class MemoryBus implements Bus {
  readonly kind = 'memory' as const;
  private readonly logs = new Map<string, RoomLog>();
  private counts: ReadonlyMap<string, number> = new Map();
  private handler: BusHandler | undefined;
  private readonly now: () => number;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: MemoryBusOptions) {
    this.now = opts.now ?? Date.now;
  }

  async start(handler: BusHandler): Promise<void> {
    this.handler = handler;
    const idle = this.opts.idleRoomMs ?? 10 * 60_000;
    this.sweepTimer = setInterval(() => this.sweep(idle), Math.min(idle, 60_000));
    this.sweepTimer.unref();
  }

  private log(room: string): RoomLog {
    let l = this.logs.get(room);
    if (!l) {
      l = { epoch: randomBytes(6).toString('hex'), seq: 0, entries: [], followed: false, touched: this.now() };
      this.logs.set(room, l);
    }
    return l;
  }

  async append(items: readonly AppendItem[]): Promise<Array<RoomHead | Error>> {
    return items.map(({ room, entry }) => {
      const l = this.log(room);
      const e: LogEntry = { ...entry, seq: ++l.seq };
      l.entries.push(e);
      // Trim in chunks so the common append is O(1).
      if (l.entries.length > this.opts.history * 1.25) l.entries.splice(0, l.entries.length - this.opts.history);
      l.touched = this.now();
      if (l.followed) this.handler?.onEntries(room, l.epoch, [e]);
      return { epoch: l.epoch, seq: l.seq };
    });
  }

  async follow(room: string): Promise<RoomHead> {
    const l = this.log(room);
    l.followed = true;
    return { epoch: l.epoch, seq: l.seq };
  }

  unfollow(room: string): void {
    const l = this.logs.get(room);
    if (l) {
      l.followed = false;
      l.touched = this.now();
    }
  }

  async range(room: string, afterSeq: number, limit: number): Promise<RangeResult> {
    const l = this.log(room);
    // Entries beyond `history` may linger until the next chunked trim; they do not count.
    const first = Math.max(0, l.entries.length - this.opts.history);
    const oldest = l.entries[first]?.seq ?? l.seq + 1;
    const from = first + Math.max(0, afterSeq + 1 - oldest);
    return { epoch: l.epoch, entries: l.entries.slice(from, from + limit), oldest, head: l.seq };
  }

  async head(room: string): Promise<RoomHead> {
    const l = this.log(room);
    return { epoch: l.epoch, seq: l.seq };
  }

  reportMembers(counts: ReadonlyMap<string, number>): void {
    this.counts = new Map(counts);
  }

  members(room: string): number {
    return this.counts.get(room) ?? 0;
  }

  topRooms(n: number): Array<[string, number]> {
    return [...this.counts].sort((a, b) => b[1] - a[1]).slice(0, n);
  }

  async control(cmd: ControlCommand): Promise<void> {
    this.handler?.onControl(cmd);
  }

  available(): boolean {
    return true;
  }

  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
  }

  private sweep(idleMs: number): void {
    const cutoff = this.now() - idleMs;
    for (const [room, l] of this.logs) if (!l.followed && l.touched < cutoff) this.logs.delete(room);
  }
}
