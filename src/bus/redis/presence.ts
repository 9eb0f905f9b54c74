// Cluster-wide member counts: each worker writes its own counts into a hash that expires
// unless its heartbeat refreshes it, so a dead worker's members stop counting by themselves.
// The TTL is long (TTL_BEATS): a live worker whose loop is starved for seconds, as one fanning
// out to a million members is, keeps counting; a count that flapped made every worker push a
// `members` frame to all its members (bench/notes/million-curve.md). A worker known dead is
// forgotten at once instead: its supervisor saw it exit and names it (forgetWorkers), and a
// worker that stops cleanly removes its own counts.
// Only changes travel: a report writes the rooms whose count changed, and a heartbeat reads
// another worker's whole hash only when that worker's version moved. Every worker's version
// and a mark its every write moves sit in one shared hash, read with one command per
// heartbeat: a worker's Redis commands per heartbeat stay the same however many workers there
// are (asking each worker's version apart made W × W commands a second); only a worker whose
// mark stopped moving is looked at apart, to see whether its hash expired. Idle, Redis work
// never grows with rooms, members or messages, and a heartbeat takes one round trip.
// A heartbeat waits for Redis as long as the connection's last resort, with a late-aware bound
// (patience.ts): a worker whose loop was starved reads the replies that came meanwhile, and a
// slow Redis makes counts stale, not errors.
import type { Logger } from 'pino';
import type { Presence } from '../bus.js';
import type { Keys } from './keys.js';
import { Patience } from './patience.js';
import type { Client } from './scripts.js';

export interface RedisPresenceOptions {
  workerId: string;
  heartbeatMs: number;
  onError: (err: unknown) => void;
  /** How long each count write took (a round trip sampled every heartbeat). */
  onRoundTrip?: (ms: number) => void;
  /** Bounds each heartbeat's (and each count report's) wait for Redis. */
  patience: Patience;
  log?: Logger;
}

/** The hash field holding the writer's version; not a valid room id, so it never clashes. */
const VERSION = '#v';
/** Heartbeats without a move of a worker's mark before its hash is checked for expiry. */
const STALE_BEATS = 3;
/** A worker's counts outlive its last heartbeat by this many periods (30 s by default). */
const TTL_BEATS = 30;
/** The shared marks outlive every worker's last heartbeat by this many periods. */
const MARKS_TTL_BEATS = 2 * TTL_BEATS;
/**
 * An unchanged heartbeat refreshes the TTLs only every this many beats (they are many beats
 * long): idle, a beat is then the mark's HSET and the marks' HGETALL, not four commands.
 */
const TTL_REFRESH_BEATS = 5;
/** How long a stopping worker waits for Redis to take its counts away (its TTL covers a miss). */
const LEAVE_TIMEOUT_MS = 2000;

export class RedisPresence implements Presence {
  private own = new Map<string, number>();
  /** What Redis holds of this worker's counts (undefined: unknown, write them all). */
  private written: Map<string, number> | undefined;
  private version = 0;
  /** Other workers' hashes as last read, by worker id: their versions, marks and counts. */
  private seen = new Map<string, Seen>();
  /** Writes made: the second half of this worker's mark. */
  private writes = 0;
  private others = new Map<string, number>();
  private top: Array<[string, number]> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private writing: Promise<void> | undefined;
  /** Refreshes started; one that ends after a later one started (it timed out) is dropped. */
  private refreshes = 0;
  private readonly ownKey: string;

  constructor(
    private readonly conn: Client,
    private readonly keys: Keys,
    private readonly o: RedisPresenceOptions,
  ) {
    this.ownKey = keys.members(o.workerId);
  }

  get presenceId(): string {
    return this.o.workerId;
  }

  start(): void {
    this.running = true;
    this.schedule();
  }

  /** Stops the heartbeats and takes this worker's counts away (after a write in flight). */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    const leave = async () => {
      await this.writing?.catch(() => undefined);
      await this.remove([this.o.workerId]);
    };
    // Bounded (late-aware) and reported: a removal that fails or times out is left to the TTL.
    await new Patience(LEAVE_TIMEOUT_MS, LEAVE_TIMEOUT_MS).bound(leave()).catch((err: unknown) => this.o.onError(err));
  }

  async forgetWorkers(ids: readonly string[]): Promise<void> {
    const dead = ids.filter((id) => id !== this.o.workerId);
    if (dead.length === 0) return;
    try {
      await this.o.patience.bound(this.remove(dead));
    } catch (err) {
      return this.o.onError(err);
    }
    // Others see the marks gone on their next heartbeat; this worker counts without them now.
    for (const id of dead) this.seen.delete(id);
    this.sumOthers();
  }

  /** Deletes workers' counts and marks: one command per hash (each is its own Cluster slot). */
  private async remove(ids: readonly string[]): Promise<void> {
    await Promise.all([this.conn.hdel(this.keys.beats, ...ids), ...ids.map((id) => this.conn.del(this.keys.members(id)))]);
  }

  reportMembers(counts: ReadonlyMap<string, number>): void {
    const own = new Map<string, number>();
    for (const [room, n] of counts) if (n > 0) own.set(room, n);
    if (sameCounts(own, this.own)) return;
    this.own = own;
    this.top = undefined;
    if (this.running && this.conn.status === 'ready') this.o.patience.bound(this.flush()).catch((err: unknown) => this.o.onError(err));
  }

  members(room: string): number {
    return (this.others.get(room) ?? 0) + (this.own.get(room) ?? 0);
  }

  topRooms(n: number): Array<[string, number]> {
    if (!this.top) {
      const all = new Map(this.others);
      for (const [room, c] of this.own) all.set(room, (all.get(room) ?? 0) + c);
      this.top = [...all].sort((a, b) => b[1] - a[1]);
    }
    return this.top.slice(0, n);
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      void this.beat().finally(() => {
        if (this.running) this.schedule();
      });
    }, this.o.heartbeatMs);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    if (this.conn.status !== 'ready') return;
    try {
      // Sent together (auto-pipelined): one round trip per beat, one wakeup for its replies.
      await this.o.patience.bound(Promise.all([this.flush(), this.refresh()]));
    } catch (err) {
      this.o.onError(err);
    }
  }

  /** One write at a time, so versions and the written copy stay in step. */
  private flush(): Promise<void> {
    this.writing ??= this.write().finally(() => (this.writing = undefined));
    return this.writing;
  }

  /** The rooms whose count changed (all of them when Redis' copy is unknown), then the TTL. */
  private async write(): Promise<void> {
    const own = this.own;
    const before = this.written;
    const hb = this.o.heartbeatMs;
    const ttl = hb * TTL_BEATS;
    const set: Record<string, number> = {};
    const gone: string[] = [];
    for (const [room, n] of own) if (before?.get(room) !== n) set[room] = n;
    if (before) for (const room of before.keys()) if (!own.has(room)) gone.push(room);
    const changed = before === undefined || gone.length > 0 || Object.keys(set).length > 0;
    if (changed) this.version++;
    const version = `${this.o.workerId}:${this.version}`;
    const started = performance.now();
    const mark = `${version}|${++this.writes}`;
    const refreshTtl = changed || this.writes % TTL_REFRESH_BEATS === 0;
    const [kept, added] = await Promise.all([
      changed ? this.update(before === undefined, gone, set, version, ttl) : refreshTtl ? this.conn.pexpire(this.ownKey, ttl) : undefined,
      this.conn.hset(this.keys.beats, this.o.workerId, mark),
      refreshTtl ? this.conn.pexpire(this.keys.beats, hb * MARKS_TTL_BEATS) : undefined,
    ]);
    this.o.onRoundTrip?.(performance.now() - started);
    // The hash vanished (Redis restarted, the TTL lapsed in an outage, or a sibling took this
    // worker for dead), under a partial update or between two beats: write it all again. The
    // mark's HSET tells at once (its field was new: the marks were lost or pruned with the
    // hash); a PEXPIRE answering 0 tells of a hash that lapsed alone.
    if (before !== undefined && (kept === 0 || added === 1)) {
      this.written = undefined;
      return this.write();
    }
    this.written = own;
  }

  /**
   * The changed counts in one transaction (the hash alone: one slot). Resolves with the first
   * PEXPIRE's answer, 0 when the hash had vanished. An unchanged beat at most sets the TTL: one
   * command, not a transaction of four (most of an idle worker's Redis work).
   */
  private async update(fresh: boolean, gone: string[], set: Record<string, number>, version: string, ttl: number): Promise<number> {
    const m = this.conn.multi();
    m.pexpire(this.ownKey, ttl);
    if (fresh) m.del(this.ownKey);
    if (gone.length) m.hdel(this.ownKey, ...gone);
    m.hset(this.ownKey, { ...set, [VERSION]: version });
    m.pexpire(this.ownKey, ttl);
    const res = await m.exec();
    if (!res) throw new Error('member count transaction aborted');
    for (const [err] of res) if (err) throw err;
    return res[0]![1] as number;
  }

  /**
   * Other live workers' counts: every worker's mark in one read; a worker's whole hash only
   * when its version moved, and its hash's version alone when its mark stood still a while.
   */
  private async refresh(): Promise<void> {
    const refresh = ++this.refreshes;
    const marks = await this.conn.hgetall(this.keys.beats);
    const gone: string[] = [];
    const seen = new Map<string, Seen>();
    await Promise.all(
      Object.entries(marks).map(async ([id, mark]) => {
        if (id === this.o.workerId) return;
        const version = mark.slice(0, mark.lastIndexOf('|'));
        const known = this.seen.get(id);
        const still = known?.mark === mark ? known.still + 1 : 0;
        if (still >= STALE_BEATS) {
          // Not heard from lately: dead once its hash expired (a starved worker's hash stays a while).
          const current = await this.conn.hget(this.keys.members(id), VERSION);
          if (current === null) return void gone.push(id);
        }
        if (known && known.version === version) return void seen.set(id, { ...known, mark, still });
        const h = await this.conn.hgetall(this.keys.members(id));
        if (h[VERSION] === undefined) return void (still >= STALE_BEATS ? gone.push(id) : seen.set(id, { version: '', mark, still, counts: new Map() }));
        const counts = new Map<string, number>();
        for (const [room, v] of Object.entries(h)) {
          const n = Number(v);
          if (room !== VERSION && Number.isFinite(n) && n > 0) counts.set(room, n);
        }
        seen.set(id, { version: h[VERSION], mark, still, counts });
      }),
    );
    // A live worker writes its mark again on its next heartbeat, so a prune racing its write costs at most one period.
    if (gone.length) await this.conn.hdel(this.keys.beats, ...gone);
    if (refresh !== this.refreshes) return;
    this.seen = seen;
    this.sumOthers();
  }

  private sumOthers(): void {
    const others = new Map<string, number>();
    for (const { counts } of this.seen.values()) for (const [room, n] of counts) others.set(room, (others.get(room) ?? 0) + n);
    this.others = others;
    this.top = undefined;
  }
}

/** What a heartbeat last saw of another worker. */
interface Seen {
  /** Its hash's version ('' while the hash is missing). */
  version: string;
  /** Its mark in the shared hash, and for how many heartbeats that mark has not moved. */
  mark: string;
  still: number;
  counts: Map<string, number>;
}

function sameCounts(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}
