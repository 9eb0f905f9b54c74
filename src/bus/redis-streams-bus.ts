// The cluster bus: one Redis stream per room whose entry ids are the room's contiguous seqs,
// a shared control stream, and TTL'd per-worker member counts. Redis work grows with rooms
// with traffic and with workers × ticks, never with members.
//
// Keys (the {room} hash tag keeps a room's keys in one Cluster slot, so its scripts stay legal):
//   <prefix>:{<room>}:log    stream, entry id `<seq>-1`, fields d=<msgpack EntryBody>, e=<epoch>
//   <prefix>:{<room>}:seq    last seq (INCR)
//   <prefix>:{<room>}:epoch  random, set once (SET NX semantics); a new value = a new log
//   <prefix>:control         stream of moderation commands, MAXLEN ~ 1000
//   <prefix>:members:<id>    hash room → count of one worker, PEXPIREd by its heartbeat
//   <prefix>:workers         set of worker ids whose member hashes to aggregate
import { randomBytes } from 'node:crypto';
import { decode, encode } from '@msgpack/msgpack';
import { Redis, type ChainableCommander, type RedisOptions, type Result } from 'ioredis';
import type { Logger } from 'pino';
import type { AppendItem, Bus, BusHandler, ControlCommand, EntryBody, LogEntry, RangeResult, RoomHead } from './bus.js';

export interface RedisStreamsBusOptions {
  url: string;
  /** Entries kept per room for recovery. */
  history: number;
  /** Key prefix; one prefix = one roomcast cluster. Default 'rc'. */
  prefix?: string;
  /** Unique per worker process (names its member-count hash). */
  workerId: string;
  /** Member-count heartbeat and aggregation period; counts expire after 3×. Default 1000. */
  heartbeatMs?: number;
  /** XREAD BLOCK timeout: the longest a newly followed room waits to join the read. Default 100. */
  blockMs?: number;
  /** How often followed rooms' epochs are re-checked (a key lost without a reconnect). Default 5000. */
  epochCheckMs?: number;
  /** A command without a reply for this long fails (an append becomes an Error). Default 2000. */
  commandTimeoutMs?: number;
  /** Cap of the jittered exponential reconnect backoff. Default 2000. */
  reconnectMaxMs?: number;
  log?: Logger;
}

/** Entries per stream per XREAD: bounds one read's memory; the rest comes with the next read. */
const READ_COUNT = 1000;
const CONTROL_MAXLEN = 1000;
/** Epochs a followed room remembers as superseded (entries tagged with them are stale). */
const RETIRED_EPOCHS = 4;
/** Absent optional fields stay absent (not nil → null) after a round trip. */
const PACK = { ignoreUndefined: true } as const;

// KEYS: log, seq, epoch. ARGV: history, payload, epoch-if-missing. Returns {epoch, seq}.
const APPEND_LUA = `
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[3], epoch)
end
local seq = redis.call('INCR', KEYS[2])
if seq == 1 then
  -- Only the seq key was lost (eviction) while the log survived: continue after its top,
  -- otherwise every XADD would fail against the higher top id.
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
  if top then
    seq = tonumber(string.match(top[1], '^(%d+)')) + 1
    redis.call('SET', KEYS[2], seq)
  end
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], string.format('%d-1', seq), 'd', ARGV[2], 'e', epoch)
return {epoch, seq}
`;

// KEYS: seq, epoch. ARGV: epoch-if-missing. Returns {epoch, seq}.
const HEAD_LUA = `
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
end
return {epoch, tonumber(redis.call('GET', KEYS[1]) or '0')}
`;

// KEYS: log, seq, epoch. ARGV: epoch-if-missing, afterSeq, limit, history.
// Returns {epoch, head, oldest, entries}; atomic, so the three agree.
const RANGE_LUA = `
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[3], epoch)
end
local head = tonumber(redis.call('GET', KEYS[2]) or '0')
local oldest = head + 1
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
if first then oldest = tonumber(string.match(first[1], '^(%d+)')) end
-- MAXLEN ~ trims whole stream nodes lazily; entries past \`history\` do not count (as in MemoryBus).
local floor = head - tonumber(ARGV[4]) + 1
if oldest < floor then oldest = floor end
local from = tonumber(ARGV[2]) + 1
if from < oldest then from = oldest end
local entries = {}
if tonumber(ARGV[3]) > 0 and from <= head then
  entries = redis.call('XRANGE', KEYS[1], string.format('%d-1', from), '+', 'COUNT', ARGV[3])
end
return {epoch, head, oldest, entries}
`;

type StreamEntry = [id: Buffer, fields: Buffer[]];

/** The commands defineCommand adds (ioredis cannot type them itself). */
interface Scripts<Context extends { type: 'default' | 'pipeline' }> {
  rcAppend(log: string, seq: string, epoch: string, history: number, payload: Buffer, newEpoch: string): Result<unknown, Context>;
  rcHead(seq: string, epoch: string, newEpoch: string): Result<unknown, Context>;
  rcRangeBuffer(log: string, seq: string, epoch: string, newEpoch: string, after: number, limit: number, history: number): Result<unknown, Context>;
}
type Conn = Redis & Scripts<{ type: 'default' }>;
type Batch = ChainableCommander & Scripts<{ type: 'pipeline' }>;

/** A followed room: where its delivery stands. A re-follow makes a new object. */
interface Follow {
  epoch: string;
  /** Last seq delivered to onEntries (XREAD continues after it). */
  seq: number;
  ready: boolean;
  pending: Promise<RoomHead>;
  retired: string[];
}

export class RedisStreamsBus implements Bus {
  readonly kind = 'redis' as const;
  /** Failed reads of the reader loop (each logged and backed off). */
  readErrors = 0;
  /** Failed member-count writes/refreshes. */
  heartbeatErrors = 0;

  private readonly prefix: string;
  private readonly heartbeatMs: number;
  private readonly blockMs: number;
  private readonly epochCheckMs: number;
  private readonly controlKey: string;
  private readonly workersKey: string;
  private readonly ownMembersKey: string;
  private readonly main: Conn;
  /** Blocking XREADs only (plus the epoch checks between them), so nothing waits behind a block. */
  private readonly reader: Conn;
  private handler: BusHandler | undefined;
  private readonly followed = new Map<string, Follow>();
  private controlId = '0-0';
  private resyncDue = false;
  private lastEpochCheck = 0;
  private started = false;
  /** Connected once: availability changes are reported from here on. */
  private running = false;
  private closed = false;
  private readonly stop = new AbortController();
  private loop: Promise<void> | undefined;
  private beatTimer: NodeJS.Timeout | undefined;
  private avail = false;

  private own = new Map<string, number>();
  private ownVersion = 0;
  private ownWritten = -1;
  private others = new Map<string, number>();
  private top: Array<[string, number]> | undefined;

  constructor(private readonly o: RedisStreamsBusOptions) {
    if (!Number.isInteger(o.history) || o.history < 1) throw new Error('history must be an integer >= 1');
    if (!o.workerId) throw new Error('workerId is required');
    this.prefix = o.prefix ?? 'rc';
    this.heartbeatMs = o.heartbeatMs ?? 1000;
    this.blockMs = o.blockMs ?? 100;
    this.epochCheckMs = o.epochCheckMs ?? 5000;
    this.controlKey = `${this.prefix}:control`;
    this.workersKey = `${this.prefix}:workers`;
    this.ownMembersKey = this.membersKey(o.workerId);
    const timeout = o.commandTimeoutMs ?? 2000;
    const cap = o.reconnectMaxMs ?? 2000;
    const common: RedisOptions = {
      lazyConnect: true,
      // Fail at once while disconnected (an append becomes an Error, never a late duplicate):
      // no offline queue, and nothing in flight at a disconnect is resent.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      // Capped, jittered exponential backoff, so a fleet does not reconnect in lockstep.
      retryStrategy: (times) => {
        const d = Math.min(cap, 50 * 2 ** Math.min(times, 16));
        return Math.round(d / 2 + (Math.random() * d) / 2);
      },
    };
    this.main = this.connection({ ...common, commandTimeout: timeout, connectionName: `roomcast:${o.workerId}:main` });
    // blockingTimeout: an XREAD orphaned by a dropped socket resolves (empty) soon after its BLOCK
    // instead of hanging the loop until the next reconnect.
    this.reader = this.connection({
      ...common,
      commandTimeout: timeout + this.blockMs,
      blockingTimeout: this.blockMs,
      connectionName: `roomcast:${o.workerId}:reader`,
    });
    this.reader.on('ready', () => {
      // A reconnect may have met a Redis that restarted empty: re-check every followed epoch.
      this.resyncDue = true;
    });
  }

  private connection(opts: RedisOptions): Conn {
    const c = new Redis(this.o.url, opts);
    c.defineCommand('rcAppend', { numberOfKeys: 3, lua: APPEND_LUA });
    c.defineCommand('rcHead', { numberOfKeys: 2, lua: HEAD_LUA });
    c.defineCommand('rcRange', { numberOfKeys: 3, lua: RANGE_LUA });
    let errors = 0;
    c.on('error', (err: Error) => {
      // Every failed reconnect attempt emits one; log the first of a streak loudly.
      if (errors++ === 0) this.o.log?.warn({ err, conn: opts.connectionName }, 'redis connection error');
      else this.o.log?.debug({ err, conn: opts.connectionName }, 'redis connection error');
    });
    c.on('ready', () => {
      errors = 0;
      this.updateAvailability();
    });
    for (const ev of ['close', 'end', 'reconnecting']) c.on(ev, () => this.updateAvailability());
    return c as Conn;
  }

  // ---- keys ----

  private logKey(room: string): string {
    return `${this.prefix}:{${room}}:log`;
  }
  private seqKey(room: string): string {
    return `${this.prefix}:{${room}}:seq`;
  }
  private epochKey(room: string): string {
    return `${this.prefix}:{${room}}:epoch`;
  }
  private membersKey(workerId: string): string {
    return `${this.prefix}:members:${workerId}`;
  }
  private roomOfLogKey(key: string): string {
    return key.slice(this.prefix.length + 2, -'}:log'.length);
  }

  // ---- lifecycle ----

  async start(handler: BusHandler): Promise<void> {
    if (this.started) throw new Error('RedisStreamsBus already started');
    this.started = true;
    this.handler = handler;
    try {
      await Promise.all([this.main.connect(), this.reader.connect()]);
      // Control commands are read from "now" on (`$` resolved to a concrete id, so a reconnect
      // resumes after the last one read instead of skipping what came meanwhile).
      const last = await this.main.xrevrange(this.controlKey, '+', '-', 'COUNT', 1);
      this.controlId = last[0]?.[0] ?? '0-0';
    } catch (err) {
      this.main.disconnect();
      this.reader.disconnect();
      throw new Error(`redis bus: cannot reach ${redact(this.o.url)}: ${(err as Error).message}`, { cause: err });
    }
    this.avail = this.main.status === 'ready' && this.reader.status === 'ready';
    this.running = true;
    this.loop = this.readLoop();
    this.scheduleBeat();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stop.abort();
    clearTimeout(this.beatTimer);
    if (!this.running) {
      // Never connected (or start() failed): quit would only open a connection to close it.
      this.main.disconnect();
      this.reader.disconnect();
      return;
    }
    // The member hash is left to its TTL, the same path as a crash: one mechanism to trust.
    this.reader.disconnect();
    await this.loop;
    await this.main.quit().catch(() => this.main.disconnect());
    this.avail = false;
  }

  available(): boolean {
    return this.avail;
  }

  private updateAvailability(): void {
    if (!this.running || this.closed) return;
    const now = this.main.status === 'ready' && this.reader.status === 'ready';
    if (now === this.avail) return;
    this.avail = now;
    this.o.log?.[now ? 'info' : 'warn']({ worker: this.o.workerId }, now ? 'redis bus available' : 'redis bus unavailable');
    this.handler?.onAvailability?.(now);
  }

  // ---- the log ----

  async append(items: readonly AppendItem[]): Promise<Array<RoomHead | Error>> {
    if (items.length === 0) return [];
    const batch = this.main.pipeline() as Batch;
    for (const { room, entry } of items) {
      batch.rcAppend(this.logKey(room), this.seqKey(room), this.epochKey(room), this.o.history, packBody(entry), newEpoch());
    }
    let replies: Array<[Error | null, unknown]> | null;
    try {
      replies = await batch.exec();
    } catch (err) {
      return items.map(() => asError(err));
    }
    return items.map((item, i) => {
      const r = replies?.[i];
      if (!r) return new Error('redis bus: no reply for append');
      if (r[0]) return r[0];
      const head = parseHead(r[1]);
      if (head instanceof Error) return head;
      // Our own append shows the room's log was replaced under a follow: re-read it now.
      const f = this.followed.get(item.room);
      if (f?.ready && f.epoch !== head.epoch && !f.retired.includes(head.epoch)) this.resyncDue = true;
      return head;
    });
  }

  async head(room: string): Promise<RoomHead> {
    const head = parseHead(await this.main.rcHead(this.seqKey(room), this.epochKey(room), newEpoch()));
    if (head instanceof Error) throw head;
    return head;
  }

  async range(room: string, afterSeq: number, limit: number): Promise<RangeResult> {
    const reply = await this.main.rcRangeBuffer(
      this.logKey(room),
      this.seqKey(room),
      this.epochKey(room),
      newEpoch(),
      Math.max(0, Math.floor(afterSeq)),
      Math.max(0, Math.floor(limit)),
      this.o.history,
    );
    if (!Array.isArray(reply) || reply.length !== 4) throw new Error('redis bus: malformed range reply');
    const [epochBuf, head, oldest, raw] = reply as [unknown, unknown, unknown, unknown];
    if (!Buffer.isBuffer(epochBuf) || typeof head !== 'number' || typeof oldest !== 'number' || !Array.isArray(raw)) {
      throw new Error('redis bus: malformed range reply');
    }
    const epoch = epochBuf.toString();
    const entries = (raw as StreamEntry[]).map((e) => this.toEntry(room, e, epoch).entry);
    return { epoch, entries, oldest, head };
  }

  // ---- following ----

  follow(room: string): Promise<RoomHead> {
    const existing = this.followed.get(room);
    // Already followed: delivery continues after the last delivered seq.
    if (existing) return existing.ready ? Promise.resolve({ epoch: existing.epoch, seq: existing.seq }) : existing.pending;
    const f: Follow = { epoch: '', seq: 0, ready: false, pending: Promise.resolve({ epoch: '', seq: 0 }), retired: [] };
    f.pending = this.head(room).then(
      (head) => {
        if (this.followed.get(room) === f) Object.assign(f, { epoch: head.epoch, seq: head.seq, ready: true });
        return head;
      },
      (err: unknown) => {
        if (this.followed.get(room) === f) this.followed.delete(room);
        throw err;
      },
    );
    this.followed.set(room, f);
    return f.pending;
  }

  unfollow(room: string): void {
    // The reader loop drops whatever an in-flight XREAD still returns for it.
    this.followed.delete(room);
  }

  /**
   * One blocking XREAD over every followed room and the control stream, on a connection of its
   * own. A short BLOCK (not CLIENT UNBLOCK from a second connection) lets follow/unfollow take
   * effect within blockMs without cross-connection races; an idle worker costs ~1/blockMs cheap reads.
   */
  private async readLoop(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      if (this.reader.status !== 'ready') {
        await this.idle(1000, this.reader);
        continue;
      }
      try {
        if (this.resyncDue || Date.now() - this.lastEpochCheck >= this.epochCheckMs) await this.checkEpochs();
        const snapshot = new Map<string, Follow>();
        const keys: string[] = [];
        const ids: string[] = [];
        for (const [room, f] of this.followed) {
          if (!f.ready) continue;
          snapshot.set(room, f);
          keys.push(this.logKey(room));
          ids.push(`${f.seq}-1`);
        }
        keys.push(this.controlKey);
        ids.push(this.controlId);
        const reply = await this.reader.xreadBuffer('COUNT', READ_COUNT, 'BLOCK', this.blockMs, 'STREAMS', ...keys, ...ids);
        failures = 0;
        if (reply) this.dispatch(reply, snapshot);
      } catch (err) {
        if (this.closed) break;
        this.readErrors++;
        failures++;
        this.o.log?.warn({ err, failures, worker: this.o.workerId }, 'redis bus read failed; backing off');
        await this.idle(Math.min(2000, 25 * 2 ** Math.min(failures, 10)));
      }
    }
  }

  /** Compares each followed room's epoch with Redis; a changed log is read from its start. */
  private async checkEpochs(): Promise<void> {
    this.lastEpochCheck = Date.now();
    const rooms = [...this.followed].filter(([, f]) => f.ready);
    if (rooms.length) {
      const batch = this.reader.pipeline() as Batch;
      for (const [room] of rooms) batch.rcHead(this.seqKey(room), this.epochKey(room), newEpoch());
      const replies = (await batch.exec()) ?? [];
      rooms.forEach(([room, f], i) => {
        const r = replies[i];
        const head = !r ? new Error('no reply') : r[0] ?? parseHead(r[1]);
        if (head instanceof Error) {
          // One bad room must not stall the others' reads; the periodic check retries it.
          this.readErrors++;
          this.o.log?.warn({ err: head, room }, 'redis bus epoch check failed');
          return;
        }
        if (this.followed.get(room) !== f || head.epoch === f.epoch) return;
        this.o.log?.info({ room, from: f.epoch, to: head.epoch }, 'room log has a new epoch');
        retire(f, f.epoch);
        f.epoch = head.epoch;
        f.seq = 0;
        this.handler?.onEpoch?.(room, head.epoch);
      });
    }
    // Cleared only once the pipeline went through: a failed one is retried after the loop's backoff.
    this.resyncDue = false;
  }

  private dispatch(reply: Array<[key: Buffer, items: StreamEntry[]]>, snapshot: ReadonlyMap<string, Follow>): void {
    for (const [keyBuf, items] of reply) {
      const key = keyBuf.toString();
      if (key === this.controlKey) {
        this.dispatchControl(items);
        continue;
      }
      const room = this.roomOfLogKey(key);
      const f = this.followed.get(room);
      if (!f || f !== snapshot.get(room)) continue; // unfollowed (or re-followed) meanwhile
      let group: LogEntry[] = [];
      let groupEpoch = f.epoch;
      const flush = () => {
        if (group.length) this.deliver(room, groupEpoch, group);
        group = [];
      };
      for (const item of items) {
        const { entry, epoch } = this.toEntry(room, item, f.epoch);
        if (f.retired.includes(epoch)) continue;
        if (epoch === f.epoch && entry.seq <= f.seq) continue;
        if (epoch !== f.epoch) {
          // Appends always use the current epoch: a different one here is newer.
          retire(f, f.epoch);
          f.epoch = epoch;
          this.handler?.onEpoch?.(room, epoch);
        }
        if (epoch !== groupEpoch) flush();
        groupEpoch = epoch;
        f.seq = entry.seq;
        group.push(entry);
      }
      flush();
    }
  }

  private deliver(room: string, epoch: string, entries: LogEntry[]): void {
    try {
      this.handler?.onEntries(room, epoch, entries);
    } catch (err) {
      this.o.log?.error({ err, room }, 'onEntries handler threw');
    }
  }

  private dispatchControl(items: StreamEntry[]): void {
    for (const [id, fields] of items) {
      this.controlId = id.toString();
      const raw = field(fields, 'c');
      let cmd: unknown;
      try {
        cmd = raw ? decode(raw) : undefined;
      } catch {
        cmd = undefined;
      }
      if (!isControl(cmd)) {
        this.o.log?.warn({ id: this.controlId }, 'malformed control entry skipped');
        continue;
      }
      try {
        this.handler?.onControl(cmd);
      } catch (err) {
        this.o.log?.error({ err, cmd }, 'onControl handler threw');
      }
    }
  }

  /** A stream entry as a LogEntry; an undecodable body becomes an empty entry so seqs stay contiguous. */
  private toEntry(room: string, [id, fields]: StreamEntry, fallbackEpoch: string): { entry: LogEntry; epoch: string } {
    const seq = Number.parseInt(id.toString(), 10);
    const epoch = field(fields, 'e')?.toString() ?? fallbackEpoch;
    const body = unpackBody(field(fields, 'd'));
    if (!body) {
      this.readErrors++;
      this.o.log?.error({ room, seq }, 'undecodable log entry; delivered empty');
      return { entry: { msgs: [], likes: 0, ts: 0, seq }, epoch };
    }
    return { entry: { msgs: body.msgs, likes: body.likes, ts: body.ts, seq }, epoch };
  }

  // ---- control ----

  /** XADD to the shared control stream; every worker (this one too) reads it in one order. */
  async control(cmd: ControlCommand): Promise<void> {
    await this.main.xadd(this.controlKey, 'MAXLEN', '~', CONTROL_MAXLEN, '*', 'c', Buffer.from(encode(cmd, PACK)));
  }

  // ---- member counts ----

  reportMembers(counts: ReadonlyMap<string, number>): void {
    const own = new Map<string, number>();
    for (const [room, n] of counts) if (n > 0) own.set(room, n);
    this.own = own;
    this.ownVersion++;
    this.top = undefined;
    if (this.started && !this.closed && this.main.status === 'ready') {
      this.writeCounts(true).catch((err: unknown) => this.heartbeatFailed(err, 'write'));
    }
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

  private scheduleBeat(): void {
    this.beatTimer = setTimeout(() => {
      void this.beat().finally(() => {
        if (!this.closed) this.scheduleBeat();
      });
    }, this.heartbeatMs);
    this.beatTimer.unref();
  }

  private async beat(): Promise<void> {
    if (this.main.status !== 'ready') return;
    try {
      await this.writeCounts(this.ownWritten !== this.ownVersion);
      await this.refreshMembers();
    } catch (err) {
      this.heartbeatFailed(err, 'heartbeat');
    }
  }

  /** Full rewrite (O(rooms of this worker)) when counts changed, else only a TTL refresh. */
  private async writeCounts(full: boolean): Promise<void> {
    const version = this.ownVersion;
    const own = this.own;
    const key = this.ownMembersKey;
    const m = this.main.multi();
    if (full) {
      m.del(key);
      if (own.size) m.hset(key, Object.fromEntries(own));
    }
    m.pexpire(key, this.heartbeatMs * 3).sadd(this.workersKey, this.o.workerId);
    const res = await m.exec();
    if (!res) throw new Error('member count transaction aborted');
    for (const [err] of res) if (err) throw err;
    if (full) this.ownWritten = version;
    // The hash vanished (Redis restarted or the TTL lapsed during an outage): write it again.
    else if (own.size && res[0]?.[1] === 0) await this.writeCounts(true);
  }

  /** Sums every other live worker's hash; O(workers × their rooms), once per heartbeat. */
  private async refreshMembers(): Promise<void> {
    const ids = (await this.main.smembers(this.workersKey)).filter((id) => id !== this.o.workerId);
    const others = new Map<string, number>();
    if (ids.length) {
      const batch = this.main.pipeline();
      for (const id of ids) batch.hgetall(this.membersKey(id));
      const replies = (await batch.exec()) ?? [];
      const gone: string[] = [];
      ids.forEach((id, i) => {
        const r = replies[i];
        if (!r || r[0]) throw r?.[0] ?? new Error('no reply for member counts');
        const h = r[1];
        if (typeof h !== 'object' || h === null || Object.keys(h).length === 0) {
          gone.push(id);
          return;
        }
        for (const [room, v] of Object.entries(h)) {
          const n = Number(v);
          if (Number.isFinite(n) && n > 0) others.set(room, (others.get(room) ?? 0) + n);
        }
      });
      // An empty (expired) hash is a dead worker or one with no members; a live one re-adds
      // itself on its next heartbeat, so a prune racing its write costs at most one period.
      if (gone.length) await this.main.srem(this.workersKey, ...gone);
    }
    this.others = others;
    this.top = undefined;
  }

  private heartbeatFailed(err: unknown, what: string): void {
    this.heartbeatErrors++;
    this.o.log?.warn({ err, worker: this.o.workerId }, `redis bus member count ${what} failed`);
  }

  /** Waits `ms`, or until close(), or until `conn` is ready. */
  private idle(ms: number, conn?: Redis): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.stop.signal.removeEventListener('abort', done);
        conn?.off('ready', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.stop.signal.addEventListener('abort', done);
      conn?.once('ready', done);
    });
  }
}

function newEpoch(): string {
  return randomBytes(6).toString('hex');
}

function packBody(entry: EntryBody): Buffer {
  const u8 = encode({ msgs: entry.msgs, likes: entry.likes, ts: entry.ts }, PACK);
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

function unpackBody(raw: Buffer | undefined): EntryBody | undefined {
  if (!raw) return undefined;
  let v: unknown;
  try {
    v = decode(raw);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { msgs, likes, ts } = v as Record<string, unknown>;
  if (!Array.isArray(msgs) || typeof likes !== 'number' || typeof ts !== 'number') return undefined;
  return { msgs: msgs as EntryBody['msgs'], likes, ts };
}

function field(fields: Buffer[], name: string): Buffer | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i]!.toString() === name) return fields[i + 1];
  return undefined;
}

function parseHead(v: unknown): RoomHead | Error {
  if (Array.isArray(v) && v.length === 2) {
    const [epoch, seq] = v as [unknown, unknown];
    if (typeof seq === 'number') {
      if (typeof epoch === 'string') return { epoch, seq };
      if (Buffer.isBuffer(epoch)) return { epoch: epoch.toString(), seq };
    }
  }
  return new Error('redis bus: malformed head reply');
}

function isControl(v: unknown): v is ControlCommand {
  if (typeof v !== 'object' || v === null) return false;
  const c = v as Record<string, unknown>;
  if (c.type === 'disconnect') return typeof c.uid === 'string' && typeof c.untilMs === 'number';
  if (typeof c.room !== 'string' || typeof c.untilMs !== 'number') return false;
  if (c.type === 'kick') return typeof c.uid === 'string';
  return c.type === 'mute' && (c.uid === undefined || typeof c.uid === 'string');
}

function retire(f: Follow, epoch: string): void {
  if (!epoch || f.retired.includes(epoch)) return;
  f.retired.push(epoch);
  if (f.retired.length > RETIRED_EPOCHS) f.retired.shift();
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** The URL without its password, for logs and errors. */
function redact(url: string): string {
  return url.replace(/\/\/([^@/]*):[^@/]*@/, '//$1:***@');
}
