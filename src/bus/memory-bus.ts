// The in-memory bus of the single-process embedded default: one bounded log per room, expired
// like the Redis one (historyTtl after its last append: the next append starts a new epoch).
import { randomBytes } from 'node:crypto';
import type { AppendItem, Bus, BusHandler, BusStatus, ControlCommand, LogEntry, RangeResult, RoomHead } from './bus.js';

interface RoomLog {
  epoch: string;
  seq: number;
  entries: LogEntry[];
  /** Last append (or creation). */
  touched: number;
}

export interface MemoryBusOptions {
  /** Entries kept per room. */
  history: number;
  /** A log with no append for this long is forgotten (a new epoch). Default 86,400,000 (1 day). */
  historyTtlMs?: number;
  now?: () => number;
}

export class MemoryBus implements Bus {
  readonly kind = 'memory' as const;
  readonly presenceId = 'memory';
  /** One process: an append's entries reach onEntries at once, and nothing else is read. */
  readonly readsBack = false;
  private readonly logs = new Map<string, RoomLog>();
  private readonly followed = new Set<string>();
  private counts: ReadonlyMap<string, number> = new Map();
  private handler: BusHandler | undefined;
  private readonly now: () => number;
  private readonly ttlMs: number;
  private sweepTimer: NodeJS.Timeout | undefined;
  private state: BusStatus = 'connecting';

  constructor(private readonly opts: MemoryBusOptions) {
    this.now = opts.now ?? Date.now;
    this.ttlMs = opts.historyTtlMs ?? 86_400_000;
  }

  async start(handler: BusHandler): Promise<void> {
    this.handler = handler;
    this.state = 'ready';
    this.sweepTimer = setInterval(() => this.sweep(), Math.min(this.ttlMs, 60_000));
    this.sweepTimer.unref();
  }

  /** The room's live log; an expired one is replaced by an empty log under a new epoch. */
  private log(room: string): RoomLog {
    let l = this.logs.get(room);
    if (!l || this.now() - l.touched >= this.ttlMs) {
      const expired = l !== undefined;
      l = { epoch: randomBytes(6).toString('hex'), seq: 0, entries: [], touched: this.now() };
      this.logs.set(room, l);
      if (expired && this.followed.has(room)) this.handler?.onEpoch?.(room, l.epoch);
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
      if (this.followed.has(room)) this.handler?.onEntries(room, l.epoch, [e]);
      return { epoch: l.epoch, seq: l.seq };
    });
  }

  async follow(room: string): Promise<RoomHead> {
    this.followed.add(room);
    return this.head(room);
  }

  unfollow(room: string): void {
    this.followed.delete(room);
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

  /** One process holds every count: there is no other writer to forget. */
  async forgetWorkers(): Promise<void> {}

  async control(cmd: ControlCommand): Promise<void> {
    this.handler?.onControl(cmd);
  }

  status(): BusStatus {
    return this.state;
  }

  available(): boolean {
    return this.state === 'ready';
  }

  async close(): Promise<void> {
    this.state = 'closed';
    clearInterval(this.sweepTimer);
  }

  /** Forgets expired logs of rooms nobody follows (a followed one is renewed on its next use). */
  private sweep(): void {
    const cutoff = this.now() - this.ttlMs;
    for (const [room, l] of this.logs) if (!this.followed.has(room) && l.touched < cutoff) this.logs.delete(room);
  }
}
