// The cluster bus on Redis streams, composed of parts that each own one thing: the room log
// (room-log.ts), the live feed over partition streams (feed.ts, stream-reader.ts), presence
// counts (presence.ts) and the control channel (control.ts). Runs on one Redis or a Redis
// Cluster; the key layout is in redis/keys.ts.
import type { Logger } from 'pino';
import type { AppendItem, Bus, BusEvents, BusHandler, BusStatus, ControlCommand, RangeResult, RoomHead } from './bus.js';
import { Connections, redact, type RedisTarget } from './redis/connection.js';
import { decodeControl, RedisControl } from './redis/control.js';
import { PartitionFeed, type ReaderPool } from './redis/feed.js';
import { Keys } from './redis/keys.js';
import { RedisPresence } from './redis/presence.js';
import { Patience } from './redis/patience.js';
import { RedisRoomLog } from './redis/room-log.js';
import type { Client } from './redis/scripts.js';
import { StreamReader } from './redis/stream-reader.js';

export interface RedisStreamsBusOptions {
  /** One Redis (`{url}`) or a Redis Cluster's seed nodes (`{cluster}`). */
  target: RedisTarget;
  /** Entries kept per room for recovery. */
  history: number;
  /** A room's keys expire this long after its last append. Default 86,400,000 (1 day). */
  historyTtlMs?: number;
  /** Partition streams rooms hash to; every node of a deployment must use the same. Default 64. */
  partitions?: number;
  /** Key prefix; one prefix = one roomcast cluster. Default 'rc'. */
  prefix?: string;
  /** Unique per worker process (names its member-count hash). */
  workerId: string;
  /** Member-count heartbeat and aggregation period; counts expire after 30× (presence.ts). Default 1000. */
  heartbeatMs?: number;
  /** XREAD BLOCK timeout of an idle reader. Default 5000. */
  blockMs?: number;
  /** Least time between two reads that returned entries: the worker's (effective) tick. Default 50. */
  readPaceMs?: () => number;
  /**
   * How long a nudged read may wait (default 0: at once): while the members storm a gift may
   * wait this long for the worker's own next read, its tick's, and go out in that frame.
   */
  nudgeWaitMs?: () => number;
  /**
   * An append without a reply for this long becomes an Error (UNAVAILABLE), at least: the
   * timeout grows with the slowest recent round trip, and a timer that fired late because
   * the process was starved gives the lost time back (redis/patience.ts). Default 2000.
   */
  commandTimeoutMs?: number;
  /**
   * The adaptive append timeout's ceiling, and the timeout of the commands that are safe to
   * wait out (heads, ranges, control commands), which grows to 2× with slow round trips; late
   * timers give the lost time back (redis/patience.ts). On the command connection ioredis' own
   * timer, which is not late-aware, only catches a connection that stopped answering: 4× this,
   * which member-count writes wait too. A blocking read waits this long past its BLOCK.
   * Default 15000.
   */
  maxCommandTimeoutMs?: number;
  /** Cap of the jittered exponential reconnect backoff. Default 2000. */
  reconnectMaxMs?: number;
  /** Acks wait for this many replicas (Redis WAIT). Default 0. */
  waitReplicas?: number;
  events?: Partial<BusEvents>;
  log?: Logger;
}

const NO_EVENTS: BusEvents = { error() {}, reconnect() {}, resubscribe() {}, gapFill() {}, status() {} };

export class RedisStreamsBus implements Bus {
  readonly kind = 'redis' as const;
  private readonly keys: Keys;
  private readonly conns: Connections;
  private readonly main: Client;
  private readonly events: BusEvents;
  private readonly roomLog: RedisRoomLog;
  private readonly presence: RedisPresence;
  private readonly controls: RedisControl;
  private readonly feed: PartitionFeed;
  private readonly blockMs: number;
  private readonly readers = new Map<string, StreamReader>();
  private handler: BusHandler | undefined;
  private started = false;
  private running = false;
  /**
   * On one Redis an own append wakes this worker's reader at once (CLIENT UNBLOCK breaks its
   * pace's wait). A Cluster's readers cannot be unblocked (the command would have to reach the
   * reader's node): there the pipeline publishes its own entries after their append.
   */
  readonly readsBack: boolean;

  constructor(private readonly o: RedisStreamsBusOptions) {
    if (!Number.isInteger(o.history) || o.history < 1) throw new Error('history must be an integer >= 1');
    if (!o.workerId) throw new Error('workerId is required');
    const partitions = o.partitions ?? 64;
    if (!Number.isInteger(partitions) || partitions < 1) throw new Error('partitions must be an integer >= 1');
    this.keys = new Keys(o.prefix ?? 'rc', partitions);
    this.events = { ...NO_EVENTS, ...o.events };
    this.blockMs = o.blockMs ?? 5000;
    const historyTtlMs = o.historyTtlMs ?? 86_400_000;
    const timeout = o.commandTimeoutMs ?? 2000;
    const maxTimeout = Math.max(timeout, o.maxCommandTimeoutMs ?? 15_000);
    const patience = new Patience(timeout, maxTimeout);
    const patient = new Patience(maxTimeout, 2 * maxTimeout);
    const lastResortMs = 4 * maxTimeout;
    this.conns = new Connections(
      { target: o.target, commandTimeoutMs: maxTimeout, lastResortMs, reconnectMaxMs: o.reconnectMaxMs ?? 2000, log: o.log },
      (s) => this.statusChanged(s),
      () => this.events.reconnect(),
    );
    this.readsBack = !this.conns.cluster;
    this.main = this.conns.main(`roomcast:${o.workerId}:main`);
    this.roomLog = new RedisRoomLog(this.main, this.keys, {
      history: o.history,
      historyTtlMs,
      waitReplicas: o.waitReplicas ?? 0,
      waitTimeoutMs: timeout,
      patience,
      readPatience: patient,
    });
    this.presence = new RedisPresence(this.main, this.keys, {
      workerId: o.workerId,
      heartbeatMs: o.heartbeatMs ?? 1000,
      log: o.log,
      onRoundTrip: (ms) => patience.note(ms),
      // A late count costs only staleness, so it waits as long as the connection's last resort:
      // on a starved box (Redis waiting on the run queue, a worker blocked in back-to-back
      // fan-outs) the patient bound turned slowness into logged timeouts (bench/notes/million-curve.md).
      patience: new Patience(lastResortMs, lastResortMs),
      onError: (err) => {
        this.events.error('heartbeat');
        o.log?.warn({ err, worker: o.workerId }, 'redis bus member count update failed');
      },
    });
    this.controls = new RedisControl(this.main, this.keys, historyTtlMs, patient);
    this.feed = new PartitionFeed({ log: this.roomLog, keys: this.keys, events: this.events, logger: o.log });
  }

  // ---- lifecycle ----

  async start(handler: BusHandler): Promise<void> {
    if (this.started) throw new Error('RedisStreamsBus already started');
    this.started = true;
    this.handler = handler;
    let controlFrom: string;
    try {
      await this.conns.connect(this.main);
      await this.checkPartitions();
      controlFrom = await this.controls.lastId();
    } catch (err) {
      this.conns.close();
      const where = 'url' in this.o.target ? redact(this.o.target.url) : this.o.target.cluster.map((n) => `${n.host}:${n.port}`).join(',');
      throw new Error(`redis bus: cannot reach ${where}: ${(err as Error).message}`, { cause: err });
    }
    this.feed.attach(handler, this.readerPool());
    // The control stream is read by every worker: its own reader on a Cluster (it is one slot).
    const control = this.conns.cluster ? this.newReader(this.keys.control, true) : this.shared();
    control.add(this.keys.control, controlFrom);
    try {
      await Promise.all([...new Set(this.readers.values())].map((r) => r.ready(this.o.commandTimeoutMs ?? 2000)));
    } catch (err) {
      await this.stopReaders();
      throw err;
    }
    this.running = true;
    this.events.status(this.conns.status);
    this.presence.start();
  }

  async close(): Promise<void> {
    if (!this.running) {
      await this.stopReaders();
      return;
    }
    this.running = false;
    await this.presence.stop();
    this.feed.close();
    await this.stopReaders();
    this.events.status('closed');
  }

  private async stopReaders(): Promise<void> {
    const readers = [...new Set(this.readers.values())];
    this.readers.clear();
    this.conns.close();
    await Promise.all(readers.map((r) => r.close()));
  }

  status(): BusStatus {
    return this.conns.status;
  }

  available(): boolean {
    return this.running && this.conns.status === 'ready';
  }

  private statusChanged(s: BusStatus): void {
    if (!this.running) return;
    this.events.status(s);
    const up = s === 'ready';
    // Back from an outage: what the feed may have missed is re-checked room by room.
    if (up) void this.feed.resync();
    this.o.log?.[up ? 'info' : 'warn']({ worker: this.o.workerId, status: s }, up ? 'redis bus available' : 'redis bus unavailable');
    this.handler?.onAvailability?.(up);
  }

  /** Every node of a deployment must hash rooms to the same partitions. */
  private async checkPartitions(): Promise<void> {
    const want = String(this.keys.partitionCount);
    await this.main.set(this.keys.partitions, want, 'NX');
    const have = await this.main.get(this.keys.partitions);
    if (have !== want) {
      throw new Error(`this deployment (prefix ${this.keys.prefix}) uses ${have} bus partitions; this node is configured with ${want}`);
    }
  }

  // ---- readers ----

  /** One Redis: one reader for every stream. A Cluster: a reader per stream (one XREAD cannot span slots). */
  private readerPool(): ReaderPool {
    if (!this.conns.cluster) {
      return { add: (key, from) => this.shared().add(key, from), remove: (key) => this.shared().remove(key) };
    }
    return {
      add: (key, from) => (this.readers.get(key) ?? this.newReader(key, false)).add(key, from),
      remove: (key) => {
        const r = this.readers.get(key);
        if (!r) return;
        this.readers.delete(key);
        void r.close();
        this.conns.drop(r.conn);
      },
    };
  }

  private shared(): StreamReader {
    return this.readers.get('*') ?? this.newReader('*', true);
  }

  private newReader(slot: string, essential: boolean): StreamReader {
    const conn = this.conns.reader({ name: `roomcast:${this.o.workerId}:reader`, blockMs: this.blockMs }, essential);
    const reader = new StreamReader({
      conn,
      blockMs: this.blockMs,
      paceMs: this.o.readPaceMs ?? (() => 50),
      onItems: (key, items) => {
        if (key === this.keys.control) this.dispatchControl(items);
        else this.feed.onPartition(items);
      },
      onReadDone: () => this.handler?.onReadDone?.(),
      onError: (err) => {
        this.events.error('read');
        this.o.log?.warn({ err, worker: this.o.workerId }, 'redis bus read failed; backing off');
      },
      // A lone partition reader of a Cluster came back; a whole-bus outage resyncs on 'ready'.
      onResumed: () => {
        if (this.conns.status === 'ready') void this.feed.resync();
      },
      unblock: this.conns.cluster ? undefined : async (id) => Number(await this.main.client('UNBLOCK', id)) === 1,
      nudgeOf: (key) => this.keys.nudgeOf(key),
      owed: this.readsBack ? () => this.feed.owed() : undefined,
      nudgeWaitMs: this.o.nudgeWaitMs,
      log: this.o.log,
    });
    this.readers.set(slot, reader);
    void this.conns.connect(conn).catch(() => {
      // Reconnects are ioredis' job (retryStrategy); the status reflects the wait.
    });
    reader.start();
    return reader;
  }

  private dispatchControl(items: Parameters<typeof decodeControl>[0]): void {
    for (const cmd of decodeControl(items)) {
      if (!cmd) {
        this.events.error('control');
        this.o.log?.warn('malformed control entry skipped');
        continue;
      }
      try {
        this.handler?.onControl(cmd);
      } catch (err) {
        this.o.log?.error({ err, cmd }, 'onControl handler threw');
      }
    }
  }

  // ---- the parts ----

  async append(items: readonly AppendItem[]): Promise<Array<RoomHead | Error>> {
    // Down is down: a connection that has not seen the outage yet would send into it and wait
    // out the timeout, when the bus already knows (another of its connections saw it).
    if (!this.available()) {
      this.events.error('append');
      return items.map(() => new Error('redis bus unavailable'));
    }
    const results = await this.roomLog.append(items);
    if (results.some((r) => r instanceof Error)) this.events.error('append');
    if (this.readsBack) {
      results.forEach((r, i) => r instanceof Error || this.feed.appended(items[i]!.room, r));
      if (this.feed.owed()) this.readers.get('*')?.readSoon();
    }
    return results;
  }

  head(room: string): Promise<RoomHead> {
    return this.roomLog.head(room);
  }

  async range(room: string, afterSeq: number, limit: number): Promise<RangeResult> {
    try {
      return await this.roomLog.range(room, afterSeq, limit);
    } catch (err) {
      this.events.error('range');
      throw err;
    }
  }

  follow(room: string): Promise<RoomHead> {
    return this.feed.follow(room);
  }

  unfollow(room: string): void {
    this.feed.unfollow(room);
  }

  reportMembers(counts: ReadonlyMap<string, number>): void {
    this.presence.reportMembers(counts);
  }

  members(room: string): number {
    return this.presence.members(room);
  }

  topRooms(n: number): Array<[string, number]> {
    return this.presence.topRooms(n);
  }

  get presenceId(): string {
    return this.presence.presenceId;
  }

  forgetWorkers(ids: readonly string[]): Promise<void> {
    return this.presence.forgetWorkers(ids);
  }

  async control(cmd: ControlCommand): Promise<void> {
    try {
      await this.controls.control(cmd);
    } catch (err) {
      this.events.error('control');
      throw err;
    }
  }
}
