// Cluster-wide member counts: each worker writes its own counts into a hash that expires
// unless its heartbeat refreshes it, so a dead worker's members stop counting by themselves.
// Redis work per heartbeat grows with workers, never with members or messages.
import type { Logger } from 'pino';
import type { Presence } from '../bus.js';
import type { Keys } from './keys.js';
import type { Client } from './scripts.js';

export interface RedisPresenceOptions {
  workerId: string;
  heartbeatMs: number;
  onError: (err: unknown) => void;
  log?: Logger;
}

export class RedisPresence implements Presence {
  private own = new Map<string, number>();
  private ownVersion = 0;
  private ownWritten = -1;
  private others = new Map<string, number>();
  private top: Array<[string, number]> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private readonly ownKey: string;

  constructor(
    private readonly conn: Client,
    private readonly keys: Keys,
    private readonly o: RedisPresenceOptions,
  ) {
    this.ownKey = keys.members(o.workerId);
  }

  start(): void {
    this.running = true;
    this.schedule();
  }

  stop(): void {
    // The member hash is left to its TTL, the same path as a crash: one mechanism to trust.
    this.running = false;
    clearTimeout(this.timer);
  }

  reportMembers(counts: ReadonlyMap<string, number>): void {
    const own = new Map<string, number>();
    for (const [room, n] of counts) if (n > 0) own.set(room, n);
    this.own = own;
    this.ownVersion++;
    this.top = undefined;
    if (this.running && this.conn.status === 'ready') this.write(true).catch((err: unknown) => this.o.onError(err));
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
      await this.write(this.ownWritten !== this.ownVersion);
      await this.refresh();
    } catch (err) {
      this.o.onError(err);
    }
  }

  /** Full rewrite (O(rooms of this worker)) when counts changed, else only a TTL refresh. */
  private async write(full: boolean): Promise<void> {
    const version = this.ownVersion;
    const own = this.own;
    const hb = this.o.heartbeatMs;
    // The hash alone in the transaction (one slot); the shared worker set beside it.
    const m = this.conn.multi();
    if (full) {
      m.del(this.ownKey);
      if (own.size) m.hset(this.ownKey, Object.fromEntries(own));
    }
    m.pexpire(this.ownKey, hb * 3);
    const [res] = await Promise.all([m.exec(), this.conn.sadd(this.keys.workers, this.o.workerId), this.conn.pexpire(this.keys.workers, hb * 10)]);
    if (!res) throw new Error('member count transaction aborted');
    for (const [err] of res) if (err) throw err;
    if (full) this.ownWritten = version;
    // The hash vanished (Redis restarted or the TTL lapsed during an outage): write it again.
    else if (own.size && res[0]?.[1] === 0) await this.write(true);
  }

  /** Sums every other live worker's hash; O(workers × their rooms), once per heartbeat. */
  private async refresh(): Promise<void> {
    const ids = (await this.conn.smembers(this.keys.workers)).filter((id) => id !== this.o.workerId);
    const hashes = await Promise.all(ids.map((id) => this.conn.hgetall(this.keys.members(id))));
    const others = new Map<string, number>();
    const gone: string[] = [];
    hashes.forEach((h, i) => {
      if (Object.keys(h).length === 0) {
        gone.push(ids[i]!);
        return;
      }
      for (const [room, v] of Object.entries(h)) {
        const n = Number(v);
        if (Number.isFinite(n) && n > 0) others.set(room, (others.get(room) ?? 0) + n);
      }
    });
    // An empty (expired) hash is a dead worker or one with no members; a live one re-adds
    // itself on its next heartbeat, so a prune racing its write costs at most one period.
    if (gone.length) await this.conn.srem(this.keys.workers, ...gone);
    this.others = others;
    this.top = undefined;
  }
}
