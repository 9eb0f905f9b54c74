// The client state machine: one WebSocket at a time across a list of hosts, reconnecting
// with capped, jittered backoff; tokens refreshed through getToken; every joined room
// resumed with since/epoch; seq gaps recovered; replayed batches deduplicated, so the app
// sees each room's batches in order and exactly once per seq.
import { Decoder, Encoder } from '@msgpack/msgpack';
import { systemClock, MAX_TIMER_MS, type Clock, type TimerHandle } from './clock.js';
import { Emitter } from './emitter.js';
import { RoomcastError, errorFromFrame, type RoomcastErrorCode } from './errors.js';
import { defaultInflate, loadZlib, type Inflate } from './inflate.js';
import { tokenExpiryMs } from './token.js';
import {
  defaultSocketFactory,
  describeSocketError,
  OPEN,
  socketFactoryFor,
  tokenProtocols,
  toBytes,
  upgradeStatusOf,
  type SocketFactory,
  type SocketLike,
  type WebSocketConstructor,
} from './transport.js';
import {
  ROOM_RE,
  type Ack,
  type Batch,
  type ClientEvents,
  type ConnectionState,
  type Frame,
  type JoinOptions,
  type JoinResult,
  type Msg,
  type RoomInfo,
  type StateEvent,
} from './types.js';

export interface ConnectOptions {
  /** WebSocket endpoint, e.g. `wss://chat.example.com/ws` (`http(s)://` works too; an empty path means `/ws`). */
  url?: string;
  /** Several endpoints: attempts rotate through them in order. */
  urls?: readonly string[];
  /** A token; with `getToken` too, the first one to use. */
  token?: string;
  /** Returns a fresh token; called when there is none, before each connect if the token expires within `tokenRefreshMarginMs`, ahead of expiry, and after the server refused one. */
  getToken?: () => string | Promise<string>;
  /** Ask for compressed (`z`) frames. */
  compress?: boolean;
  /** Open sockets with this WebSocket constructor (e.g. `ws`'s) instead of the default. */
  WebSocket?: WebSocketConstructor;
  /** Open sockets through this factory (tests inject fakes here). */
  transport?: SocketFactory;
  /** Time source and timers (tests inject a fake). */
  clock?: Clock;
  /** Random source in [0, 1) for jitter. */
  random?: () => number;
  /** Decompressor for `z` frames (default: node:zlib in Node, DecompressionStream in browsers). */
  inflate?: Inflate;
  /** Backoff: the first retry waits up to `backoffBaseMs`, doubling per failure up to `backoffMaxMs` (full jitter). */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** A connection that stayed open this long resets the backoff. */
  stableAfterMs?: number;
  /** Refresh the token this long before its `exp`. */
  tokenRefreshMarginMs?: number;
  /** Give up on an attempt that has not been welcomed after this long. */
  connectTimeoutMs?: number;
  /** Reject a request (send, like, ping, ...) not answered within this long. */
  requestTimeoutMs?: number;
  /** Send a `ping` after this long without any frame from the server (default: half the server's `hb`, at most 30 s). */
  pingIntervalMs?: number;
  /** Reconnect when nothing arrives this long after such a ping. */
  pongTimeoutMs?: number;
  /** Most live batches kept while a gap is being recovered. */
  maxQueuedBatches?: number;
  /** A recovery replay that delivers nothing for this long while a gap remains is retried. */
  recoveryStallMs?: number;
  /** Join the first room through the URL query on reconnect (saves a round trip). */
  joinInUrl?: boolean;
}

const DEFAULTS = {
  backoffBaseMs: 500,
  backoffMaxMs: 10_000,
  stableAfterMs: 5_000,
  tokenRefreshMarginMs: 30_000,
  connectTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  pongTimeoutMs: 10_000,
  maxQueuedBatches: 1_000,
  recoveryStallMs: 3_000,
};
/** Close code the server uses after too many bad frames: do not reconnect. */
const CLOSE_BAD_FRAMES = 4008;
/** Errors without a ref that answer the join requested in the URL query. */
const URL_JOIN_ERRORS = new Set(['BAD_ROOM', 'BAD_FRAME', 'FORBIDDEN', 'KICKED', 'TOO_MANY_ROOMS', 'RATE_LIMITED', 'UNAVAILABLE']);
/** Unexplained connect failures before the token is suspected (browsers cannot see a 401). */
const SUSPECT_TOKEN_AFTER = 2;
const SUSPECT_TOKEN_MIN_AGE_MS = 5 * 60_000;
const MIN_REFRESH_MS = 5_000;

type JoinReason = 'user' | 'resume' | 'gap';

interface QueuedBatch {
  epoch: string;
  from: number;
  to: number;
  msgs: Msg[];
  likes: number;
}

interface RoomState {
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
   * Set by a `joined` with recovered:true while the replay has not reached its seq: the
   * replay may interleave with live batches (a member re-joining to fill a gap stays
   * subscribed) and may run past that seq, so until it is caught up, gaps and overlaps are
   * held in the queue rather than answered with another join.
   */
  catchUp?: { until: number; stall?: TimerHandle };
  mutedUntil: number;
  roomMutedUntil: number;
}

interface Conn {
  gen: number;
  socket: SocketLike;
  url: string;
  welcomed: boolean;
  openedAt: number;
  lastRx: number;
  /** frames received so far */
  rxCount: number;
  /** the room joined through the URL query, until it is answered */
  urlRoom?: string;
  /** HTTP status of a refused upgrade (Node `ws` reports it) */
  status?: number;
  errorText?: string;
  onClosed?: () => void;
}

type Pending =
  | { kind: 'join'; room: string }
  | { kind: 'leave'; resolve: () => void; timer: TimerHandle }
  | { kind: 'request'; resolve: (f: Frame) => void; reject: (e: RoomcastError) => void; timer: TimerHandle; room?: string }
  | { kind: 'heartbeat' };

type RxItem = { gen: number; data: Uint8Array } | { gen: number; close: { code: number; reason: string } };

export class RoomcastClient extends Emitter<ClientEvents> {
  private readonly urls: readonly string[];
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly factory: SocketFactory;
  private readonly inflater: Inflate;
  private readonly tokenInHeader: boolean;
  private readonly opt: typeof DEFAULTS & ConnectOptions;
  private readonly encoder = new Encoder({ ignoreUndefined: true });
  private readonly decoder = new Decoder();

  private current: ConnectionState = 'connecting';
  private closed = false;
  private gen = 0;
  private conn: Conn | undefined;
  private urlIndex = 0;
  private failures = 0;
  private unexplainedFailures = 0;
  private refSeq = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly roomStates = new Map<string, RoomState>();
  private readyWaiters: Array<{ resolve: () => void; reject: (e: RoomcastError) => void }> = [];
  private session: { sid: string; uid: string; node: string; hb: number } | undefined;

  private token: string | undefined;
  private tokenExp: number | undefined;
  private tokenAt = 0;
  private forceRefresh = false;
  private reportedExpired = false;

  private retryTimer: TimerHandle | undefined;
  private connectTimer: TimerHandle | undefined;
  private heartbeatTimer: TimerHandle | undefined;
  private pongTimer: TimerHandle | undefined;
  private refreshTimer: TimerHandle | undefined;
  private byeTimer: TimerHandle | undefined;
  /** set by `bye`: when the next attempt may start */
  private byeDeadline: number | undefined;

  private readonly rx: RxItem[] = [];
  private rxBusy = false;

  constructor(options: ConnectOptions) {
    super();
    const urls = options.urls ?? (options.url !== undefined ? [options.url] : []);
    if (urls.length === 0) throw new TypeError('connect() needs `url` or `urls`');
    for (const u of urls) new URL(u); // throws on a malformed URL
    this.urls = [...urls];
    this.opt = { ...DEFAULTS, ...stripUndefined(options) };
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.factory = options.transport ?? (options.WebSocket ? socketFactoryFor(options.WebSocket) : defaultSocketFactory);
    // WebSocket constructors take subprotocols, so the token stays out of URLs (and proxy logs).
    this.tokenInHeader = options.transport === undefined;
    this.inflater = options.inflate ?? defaultInflate;
    if (options.token !== undefined) this.setToken(options.token);
    // Started on a microtask so join() calls made right after connect() ride on the first URL.
    void Promise.resolve().then(() => this.attempt());
  }

  // ---------------------------------------------------------------- public API

  /** The connection state. */
  get state(): ConnectionState {
    return this.current;
  }

  /** What the server said in `welcome` on the current connection (undefined while not open). */
  get info(): { sid: string; uid: string; node: string; hb: number } | undefined {
    return this.current === 'open' ? this.session : undefined;
  }

  /** Resolves once the client is open (at once if it is); rejects if it is closed first. */
  ready(): Promise<void> {
    if (this.current === 'open') return Promise.resolve();
    if (this.closed) return Promise.reject(new RoomcastError('CLOSED', 'client closed'));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /** The rooms the client is in (or joining), with the position it has reached in each. */
  rooms(): RoomInfo[] {
    return [...this.roomStates.values()].map((r) => ({
      room: r.room,
      epoch: r.epoch,
      seq: r.lastSeq,
      members: r.members,
      joined: r.active,
      mutedUntil: r.mutedUntil,
      roomMutedUntil: r.roomMutedUntil,
    }));
  }

  /**
   * Joins a room (at once if open, else as soon as the connection opens) and keeps it joined
   * across reconnects until leave(). Resolves with the `joined` answer; rejects with a
   * RoomcastError (FORBIDDEN, KICKED, BAD_ROOM, TOO_MANY_ROOMS, UNAVAILABLE, CLOSED, ABORTED).
   * RATE_LIMITED joins are retried after the server's retryMs.
   */
  join(room: string, options: JoinOptions = {}): Promise<JoinResult> {
    if (this.closed) return Promise.reject(new RoomcastError('CLOSED', 'client closed', { room }));
    if (typeof room !== 'string' || !ROOM_RE.test(room)) {
      return Promise.reject(new RoomcastError('BAD_ROOM', 'room id must be 1-64 chars of A-Z a-z 0-9 _ . : -', { room }));
    }
    let r = this.roomStates.get(room);
    if (r?.active && r.lastSeq !== undefined && r.epoch !== undefined) {
      return Promise.resolve({ room, epoch: r.epoch, seq: r.lastSeq, members: r.members ?? 0 });
    }
    if (!r) {
      r = newRoom(room);
      if (options.since !== undefined) {
        if (!Number.isSafeInteger(options.since) || options.since < 0) {
          return Promise.reject(new RoomcastError('BAD_FRAME', 'since must be an unsigned integer', { room }));
        }
        r.lastSeq = options.since;
        r.epoch = options.epoch;
      }
      this.roomStates.set(room, r);
      if (this.conn?.welcomed) this.sendJoin(r, 'user');
    }
    const state = r;
    return new Promise((resolve, reject) => state.waiters.push({ resolve, reject }));
  }

  /** Leaves a room; the SDK forgets it (no more events for it, no rejoin). */
  leave(room: string): Promise<void> {
    const r = this.roomStates.get(room);
    if (!r) return Promise.resolve();
    const c = this.conn;
    const onServer = c?.welcomed === true && (r.active || r.joinGen === c.gen);
    this.forgetRoom(r, new RoomcastError('ABORTED', 'left before the join completed', { room }));
    if (!onServer) return Promise.resolve();
    const ref = this.nextRef();
    return new Promise<void>((resolve) => {
      const timer = this.clock.setTimeout(() => {
        this.pending.delete(ref);
        resolve();
      }, this.opt.requestTimeoutMs);
      this.pending.set(ref, { kind: 'leave', resolve, timer });
      if (!this.write({ op: 'leave', ref, room })) {
        this.settle(ref);
        resolve();
      }
    });
  }

  /** Sends a chat message; resolves with the ack ({shown, seq}) or rejects with a RoomcastError. */
  async send(room: string, text: string): Promise<Ack> {
    if (typeof text !== 'string' || text.length === 0) throw new RoomcastError('BAD_FRAME', 'text must be a non-empty string', { room });
    return toAck(await this.request({ op: 'send', room, kind: 'chat', body: text }, room));
  }

  /** Sends a like (likes are delivered as counts, in `Batch.likes`). */
  async like(room: string): Promise<Ack> {
    return toAck(await this.request({ op: 'send', room, kind: 'like' }, room));
  }

  /** Moderators: kicks `uid` out of the room (and bans rejoining for `seconds`). */
  async kick(room: string, uid: string, options: { seconds?: number; reason?: string } = {}): Promise<void> {
    await this.request({ op: 'kick', room, uid, seconds: options.seconds, reason: options.reason }, room);
  }

  /** Moderators: mutes `uid` in the room, or the whole room's chat without `uid`; `seconds: 0` unmutes. */
  async mute(room: string, options: { uid?: string; seconds?: number } = {}): Promise<void> {
    await this.request({ op: 'mute', room, uid: options.uid, seconds: options.seconds }, room);
  }

  /** Round trip to the server; resolves with the server's clock (ms). */
  async ping(): Promise<number> {
    const f = await this.request({ op: 'ping' });
    return typeof f.ts === 'number' ? f.ts : NaN;
  }

  /** Closes the connection for good; pending requests reject with CLOSED. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    const c = this.conn;
    this.shutdown(new RoomcastError('CLOSED', 'client closed'));
    if (!c) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const t = this.clock.setTimeout(resolve, 1000);
      c.onClosed = () => {
        this.clock.clearTimeout(t);
        resolve();
      };
      try {
        c.socket.close(1000, 'client closed');
      } catch {
        resolve();
      }
    });
  }

  // ---------------------------------------------------------------- connecting

  private attempt(): Promise<void> {
    return this.dial().catch((err: unknown) => {
      // Not expected (dial handles its failures); never leave the client stuck.
      if (this.closed) return;
      const e = new RoomcastError('DISCONNECTED', `connect attempt failed: ${String((err as Error)?.message ?? err)}`, { cause: err });
      this.emit('error', e);
      if (this.conn === undefined && this.retryTimer === undefined) this.retry(e);
    });
  }

  private async dial(): Promise<void> {
    if (this.closed) return;
    const gen = ++this.gen;
    this.retryTimer = undefined;
    try {
      await this.ensureToken();
    } catch (err) {
      if (gen !== this.gen || this.closed) return;
      const e = new RoomcastError('TOKEN_FAILED', `getToken failed: ${String((err as Error)?.message ?? err)}`, { cause: err });
      this.emit('error', e);
      return this.retry(e);
    }
    if (this.opt.compress && this.inflater === defaultInflate) await loadZlib();
    if (gen !== this.gen || this.closed) return;
    const base = this.urls[this.urlIndex % this.urls.length]!;
    this.urlIndex++;
    const { url, shown, urlRoom } = this.buildUrl(base);
    let socket: SocketLike;
    try {
      socket = await this.factory(url, this.tokenInHeader && this.token !== undefined ? tokenProtocols(this.token) : undefined);
    } catch (err) {
      if (gen !== this.gen || this.closed) return;
      return this.retry(new RoomcastError('DISCONNECTED', `cannot open a WebSocket to ${shown}: ${String((err as Error)?.message ?? err)}`, { cause: err }));
    }
    if (gen !== this.gen || this.closed) {
      safeClose(socket);
      return;
    }
    const now = this.clock.now();
    const conn: Conn = { gen, socket, url: shown, welcomed: false, openedAt: now, lastRx: now, rxCount: 0 };
    this.conn = conn;
    if (urlRoom) {
      conn.urlRoom = urlRoom.room;
      urlRoom.joinGen = gen;
      urlRoom.joinRef = undefined;
      urlRoom.joinSince = urlRoom.lastSeq;
      urlRoom.joinReason = urlRoom.everJoined ? 'resume' : 'user';
    }
    socket.binaryType = 'arraybuffer';
    socket.onmessage = (ev) => {
      const bytes = toBytes(ev.data);
      conn.lastRx = this.clock.now();
      conn.rxCount++;
      if (bytes) this.rx.push({ gen, data: bytes });
      else this.emit('error', new RoomcastError('PROTOCOL', 'the server sent a text frame'));
      this.pump();
    };
    socket.onclose = (ev) => {
      conn.onClosed?.();
      this.rx.push({ gen, close: { code: ev?.code ?? 1006, reason: ev?.reason ?? '' } });
      this.pump();
    };
    socket.onerror = (ev) => {
      conn.errorText = describeSocketError(ev);
      conn.status ??= upgradeStatusOf(ev);
    };
    this.connectTimer = this.clock.setTimeout(() => {
      this.connectTimer = undefined;
      if (this.conn === conn && !conn.welcomed) {
        this.dropConnection(conn, { error: new RoomcastError('TIMEOUT', `no welcome from ${shown} within ${this.opt.connectTimeoutMs} ms`) });
      }
    }, this.opt.connectTimeoutMs);
  }

  private buildUrl(base: string): { url: string; shown: string; urlRoom?: RoomState } {
    const u = new URL(base);
    if (u.protocol === 'http:') u.protocol = 'ws:';
    else if (u.protocol === 'https:') u.protocol = 'wss:';
    if (u.pathname === '' || u.pathname === '/') u.pathname = '/ws';
    const q = u.searchParams;
    if (this.opt.compress) q.set('compress', 'deflate');
    let urlRoom: RoomState | undefined;
    if (this.opt.joinInUrl !== false) {
      for (const r of this.roomStates.values()) {
        if (r.joinRetry !== undefined) continue;
        urlRoom = r;
        q.set('room', r.room);
        if (r.lastSeq !== undefined) {
          q.set('since', String(r.lastSeq));
          if (r.epoch !== undefined) q.set('epoch', r.epoch);
        }
        break;
      }
    }
    const shown = new URL(u.toString());
    if (this.token !== undefined && !this.tokenInHeader) {
      q.set('token', this.token);
      shown.searchParams.set('token', 'redacted');
    }
    return { url: u.toString(), shown: shown.toString(), urlRoom };
  }

  private async ensureToken(): Promise<void> {
    const now = this.clock.now();
    const expiring = this.tokenExp !== undefined && this.tokenExp - now <= this.opt.tokenRefreshMarginMs;
    const get = this.opt.getToken;
    if (!get) {
      if (this.token !== undefined && this.tokenExp !== undefined && this.tokenExp <= now && !this.reportedExpired) {
        this.reportedExpired = true;
        this.emit('error', new RoomcastError('UNAUTHORIZED', 'the token has expired and there is no getToken to refresh it'));
      }
      return;
    }
    if (this.token !== undefined && !this.forceRefresh && !expiring) return;
    this.setToken(await callGetToken(get));
  }

  private setToken(token: string): void {
    this.token = token;
    this.tokenExp = tokenExpiryMs(token);
    this.tokenAt = this.clock.now();
    this.forceRefresh = false;
    this.reportedExpired = false;
    this.scheduleRefresh();
  }

  /** Refreshes the token ahead of its expiry so the next reconnect has a valid one. */
  private scheduleRefresh(delayMs?: number): void {
    if (this.refreshTimer !== undefined) this.clock.clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    const get = this.opt.getToken;
    if (!get || this.closed || this.tokenExp === undefined) return;
    const due = delayMs ?? Math.max(MIN_REFRESH_MS, this.tokenExp - this.opt.tokenRefreshMarginMs - this.clock.now());
    this.refreshTimer = this.clock.setTimeout(() => {
      this.refreshTimer = undefined;
      callGetToken(get).then(
        (t) => {
          if (!this.closed) this.setToken(t);
        },
        (err: unknown) => {
          if (this.closed) return;
          this.emit('error', new RoomcastError('TOKEN_FAILED', `getToken failed: ${String((err as Error)?.message ?? err)}`, { cause: err }));
          this.scheduleRefresh(MIN_REFRESH_MS);
        },
      );
    }, Math.min(due, MAX_TIMER_MS));
  }

  /** Schedules the next attempt: bye's reconnectMs, else full-jitter exponential backoff. */
  private retry(error?: RoomcastError, closeCode?: number): void {
    if (this.closed) return;
    let delay: number;
    if (this.byeDeadline !== undefined) {
      delay = Math.max(0, this.byeDeadline - this.clock.now());
      this.byeDeadline = undefined;
    } else {
      const ceiling = Math.min(this.opt.backoffMaxMs, this.opt.backoffBaseMs * 2 ** Math.min(this.failures, 30));
      delay = Math.floor(this.random() * ceiling);
      this.failures++;
    }
    this.setState('reconnecting', { delayMs: delay, error, closeCode });
    this.retryTimer = this.clock.setTimeout(() => void this.attempt(), delay);
  }

  /** The connection is gone (closed by either side, failed, or abandoned by us). */
  private dropConnection(conn: Conn, why: { code?: number; reason?: string; error?: RoomcastError }): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    this.clearConnTimers();
    safeClose(conn.socket);
    const now = this.clock.now();
    let error = why.error;
    if (!conn.welcomed) {
      if (conn.status === 401 || conn.status === 403) {
        error = new RoomcastError('UNAUTHORIZED', `the server refused the token (HTTP ${conn.status})`);
        this.emit('error', error);
        this.forceRefresh = true;
      } else {
        error ??= new RoomcastError('DISCONNECTED', `cannot connect to ${conn.url}${conn.errorText ? `: ${conn.errorText}` : ''}`);
        // Browsers never expose the upgrade's status: a refused token looks like a socket
        // closed before `welcome` for no stated reason (not a timeout, not a known status).
        if (conn.status === undefined && why.error === undefined && ++this.unexplainedFailures >= SUSPECT_TOKEN_AFTER && now - this.tokenAt >= SUSPECT_TOKEN_MIN_AGE_MS) {
          this.forceRefresh = true;
        }
      }
    } else {
      if (now - conn.openedAt >= this.opt.stableAfterMs) this.failures = 0;
      error ??= new RoomcastError('DISCONNECTED', `connection closed (${why.code ?? 1006}${why.reason ? ` ${why.reason}` : ''})`);
    }
    // Requests in flight are lost with the connection; rooms are resumed on the next one.
    const lost = new RoomcastError('DISCONNECTED', 'the connection dropped before the reply');
    for (const [ref, p] of [...this.pending]) {
      this.pending.delete(ref);
      if (p.kind === 'request') {
        this.clock.clearTimeout(p.timer);
        p.reject(new RoomcastError('DISCONNECTED', lost.message, { room: p.room }));
      } else if (p.kind === 'leave') {
        this.clock.clearTimeout(p.timer);
        p.resolve();
      }
    }
    for (const r of this.roomStates.values()) {
      r.active = false;
      r.joinGen = undefined;
      r.joinRef = undefined;
      if (r.joinRetry !== undefined) this.clock.clearTimeout(r.joinRetry);
      r.joinRetry = undefined;
      r.queue = [];
      this.endCatchUp(r);
      for (const d of r.deferred.splice(0)) d();
    }
    if (why.code === CLOSE_BAD_FRAMES) {
      const e = new RoomcastError('PROTOCOL', 'the server closed the connection for bad frames (4008); not reconnecting');
      this.emit('error', e);
      this.shutdown(e);
      return;
    }
    this.retry(error, why.code);
  }

  private clearConnTimers(): void {
    for (const t of [this.connectTimer, this.heartbeatTimer, this.pongTimer, this.byeTimer]) if (t !== undefined) this.clock.clearTimeout(t);
    this.connectTimer = this.heartbeatTimer = this.pongTimer = this.byeTimer = undefined;
  }

  private shutdown(reason: RoomcastError): void {
    this.closed = true;
    this.gen++;
    const c = this.conn;
    this.conn = undefined;
    this.clearConnTimers();
    for (const t of [this.retryTimer, this.refreshTimer]) if (t !== undefined) this.clock.clearTimeout(t);
    this.retryTimer = this.refreshTimer = undefined;
    for (const [ref, p] of [...this.pending]) {
      this.pending.delete(ref);
      if (p.kind === 'request') {
        this.clock.clearTimeout(p.timer);
        p.reject(new RoomcastError(reason.code, reason.message, { room: p.room }));
      } else if (p.kind === 'leave') {
        this.clock.clearTimeout(p.timer);
        p.resolve();
      }
    }
    for (const r of [...this.roomStates.values()]) this.forgetRoom(r, new RoomcastError(reason.code, reason.message, { room: r.room }));
    for (const w of this.readyWaiters.splice(0)) w.reject(reason);
    if (c && reason.code !== 'CLOSED') safeClose(c.socket);
    this.setState('closed', { error: reason.code === 'CLOSED' ? undefined : reason });
  }

  private setState(state: ConnectionState, extra: Partial<StateEvent> = {}): void {
    const previous = this.current;
    this.current = state;
    const ev: StateEvent = { state, previous, attempt: this.failures };
    if (extra.delayMs !== undefined) ev.delayMs = extra.delayMs;
    if (extra.error !== undefined) ev.error = extra.error;
    if (extra.closeCode !== undefined) ev.closeCode = extra.closeCode;
    if (extra.url !== undefined) ev.url = extra.url;
    this.emit('state', ev);
  }

  // ---------------------------------------------------------------- receiving

  /** Processes received items strictly in order, waiting for an async inflate when needed. */
  private pump(): void {
    while (!this.rxBusy && this.rx.length > 0) {
      const item = this.rx[0]!;
      const conn = this.conn;
      if (!conn || item.gen !== conn.gen) {
        this.rx.shift();
        continue;
      }
      if ('close' in item) {
        this.rx.shift();
        this.dropConnection(conn, item.close);
        continue;
      }
      let frame: Frame | undefined;
      try {
        frame = this.decodeFrame(item.data);
      } catch (err) {
        this.rx.shift();
        this.emit('error', new RoomcastError('PROTOCOL', `undecodable frame: ${String((err as Error)?.message ?? err)}`, { cause: err }));
        continue;
      }
      if (frame.op === 'z') {
        let inflated: Uint8Array | Promise<Uint8Array>;
        try {
          inflated = this.inflater(asBytes(frame.data));
        } catch (err) {
          this.rx.shift();
          this.emit('error', new RoomcastError('PROTOCOL', `cannot inflate a z frame: ${String((err as Error)?.message ?? err)}`, { cause: err }));
          continue;
        }
        if (isPromise(inflated)) {
          this.rxBusy = true;
          inflated
            .then(
              (bytes) => {
                this.rx.shift();
                if (this.conn?.gen === item.gen) this.handle(this.conn, this.decodeFrame(bytes));
              },
              (err: unknown) => {
                this.rx.shift();
                this.emit('error', new RoomcastError('PROTOCOL', `cannot inflate a z frame: ${String((err as Error)?.message ?? err)}`, { cause: err }));
              },
            )
            .catch((err: unknown) => this.emit('error', new RoomcastError('PROTOCOL', `bad z frame: ${String((err as Error)?.message ?? err)}`, { cause: err })))
            .finally(() => {
              this.rxBusy = false;
              this.pump();
            });
          return;
        }
        try {
          frame = this.decodeFrame(inflated);
        } catch (err) {
          this.rx.shift();
          this.emit('error', new RoomcastError('PROTOCOL', `bad z frame: ${String((err as Error)?.message ?? err)}`, { cause: err }));
          continue;
        }
      }
      this.rx.shift();
      this.handle(conn, frame);
    }
  }

  private decodeFrame(bytes: Uint8Array): Frame {
    const f = this.decoder.decode(bytes) as Frame;
    if (typeof f !== 'object' || f === null || Array.isArray(f) || typeof f.op !== 'string') throw new Error('not a map with an op');
    return f;
  }

  private handle(conn: Conn, f: Frame): void {
    switch (f.op) {
      case 'welcome':
        return this.onWelcome(conn, f);
      case 'joined':
        return this.onJoined(conn, f);
      case 'batch':
        return this.onBatch(f);
      case 'ack':
      case 'pong':
        return this.onReply(f);
      case 'left':
        if (typeof f.ref === 'number') this.settle(f.ref)?.resolve?.(f);
        return;
      case 'error':
        return this.onError(conn, f);
      case 'members': {
        const room = str(f.room);
        const r = this.roomStates.get(room);
        if (!r) return;
        r.members = num(f.count);
        return this.emit('members', { room, count: num(f.count) });
      }
      case 'kicked': {
        const room = str(f.room);
        const r = this.roomStates.get(room);
        if (r) this.forgetRoom(r, new RoomcastError('KICKED', typeof f.reason === 'string' ? f.reason : 'kicked from this room', { room }));
        const ev: ClientEvents['kicked'] = { room };
        if (typeof f.reason === 'string') ev.reason = f.reason;
        return this.emit('kicked', ev);
      }
      case 'muted': {
        const room = str(f.room);
        const all = f.all === true;
        const until = num(f.until);
        const r = this.roomStates.get(room);
        if (r) {
          if (all) r.roomMutedUntil = until;
          else r.mutedUntil = until;
        }
        return this.emit('muted', { room, until, all });
      }
      case 'bye':
        return this.onBye(conn, f);
      default:
        return; // ops added by later protocol versions
    }
  }

  private onWelcome(conn: Conn, f: Frame): void {
    if (conn.welcomed) return;
    conn.welcomed = true;
    conn.openedAt = this.clock.now();
    if (this.connectTimer !== undefined) this.clock.clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.unexplainedFailures = 0;
    this.session = { sid: str(f.sid), uid: str(f.uid), node: str(f.node), hb: num(f.hb) };
    for (const r of this.roomStates.values()) if (r.joinGen !== conn.gen) this.sendJoin(r, r.everJoined ? 'resume' : 'user');
    this.startHeartbeat(conn);
    this.setState('open', { url: conn.url });
    this.emit('open', { ...this.session, url: conn.url });
    for (const w of this.readyWaiters.splice(0)) w.resolve();
  }

  private sendJoin(r: RoomState, reason: JoinReason): void {
    const c = this.conn;
    if (!c?.welcomed) return; // sent when the connection opens
    const ref = this.nextRef();
    r.joinGen = c.gen;
    r.joinRef = ref;
    r.joinSince = r.lastSeq;
    r.joinReason = reason;
    this.pending.set(ref, { kind: 'join', room: r.room });
    const since = r.lastSeq;
    this.write({ op: 'join', ref, room: r.room, since, epoch: since !== undefined ? r.epoch : undefined });
  }

  private onJoined(conn: Conn, f: Frame): void {
    const room = str(f.room);
    if (typeof f.ref === 'number') this.pending.delete(f.ref);
    const r = this.roomStates.get(room);
    if (!r) {
      // Left while the join was in flight: the server has us in the room; leave again.
      this.write({ op: 'leave', room });
      return;
    }
    if (r.joinGen !== conn.gen) return; // not answering a join of ours
    if (conn.urlRoom === room) conn.urlRoom = undefined;
    const asked = r.joinSince;
    const reason = r.joinReason ?? 'resume';
    r.joinGen = r.joinRef = r.joinSince = r.joinReason = undefined;
    r.joinFailures = 0;
    r.active = true;
    r.everJoined = true;
    const epoch = str(f.epoch);
    const seq = num(f.seq);
    r.members = num(f.members);
    const recovered = typeof f.recovered === 'boolean' ? f.recovered : undefined;
    this.endCatchUp(r);
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
      const ev: ClientEvents['reset'] = { room, epoch, seq, reason: 'not-recovered' };
      if (previousEpoch !== undefined) ev.previousEpoch = previousEpoch;
      if (previousSeq !== undefined) ev.previousSeq = previousSeq;
      this.emit('reset', ev);
    } else {
      r.epoch = epoch;
      r.lastSeq = seq;
      r.queue = [];
    }
    const result: JoinResult = { room, epoch, seq, members: r.members };
    if (recovered !== undefined) result.recovered = recovered;
    this.emit('joined', { ...result, resumed: reason !== 'user' });
    for (const w of r.waiters.splice(0)) w.resolve(result);
    for (const d of r.deferred.splice(0)) d();
    this.drainQueue(r);
  }

  private onBatch(f: Frame): void {
    const room = str(f.room);
    const r = this.roomStates.get(room);
    if (!r || r.lastSeq === undefined || (!r.active && r.joinGen === undefined)) return;
    const b: QueuedBatch = {
      epoch: str(f.epoch),
      from: num(f.from),
      to: num(f.to),
      msgs: Array.isArray(f.msgs) ? (f.msgs as Msg[]) : [],
      likes: typeof f.likes === 'number' ? f.likes : 0,
    };
    if (!Number.isSafeInteger(b.from) || !Number.isSafeInteger(b.to) || b.to < b.from) {
      this.emit('error', new RoomcastError('PROTOCOL', `batch with a bad range ${String(f.from)}..${String(f.to)}`, { room }));
      return;
    }
    if (r.epoch !== undefined && b.epoch !== r.epoch) {
      if (r.joinGen !== undefined) return this.enqueue(r, b); // a rejoin in flight will settle the epoch
      const ev: ClientEvents['reset'] = { room, epoch: b.epoch, seq: b.from - 1, reason: 'epoch-changed', previousEpoch: r.epoch, previousSeq: r.lastSeq };
      r.epoch = b.epoch;
      r.lastSeq = b.from - 1;
      r.queue = [];
      this.endCatchUp(r);
      this.emit('reset', ev);
    }
    r.epoch ??= b.epoch;
    const last = r.lastSeq!;
    if (b.to <= last) return; // a duplicate (already delivered)
    if (b.from !== last + 1) {
      // A gap, or an overlap with what was delivered (a batch cannot be split by seq):
      // hold it; outside a catch-up, rejoin with since = last to fetch what is missing.
      if (b.from > last + 1 && r.queue.length === 0 && r.joinGen === undefined && !r.catchUp) {
        this.emit('gap', { room, expected: last + 1, got: b.from });
      }
      this.enqueue(r, b);
      if (!r.catchUp) this.recover(r);
      return;
    }
    this.deliver(r, b);
    this.drainQueue(r);
  }

  private deliver(r: RoomState, b: QueuedBatch): void {
    r.lastSeq = b.to;
    const replay = r.catchUp !== undefined && b.to <= r.catchUp.until;
    if (r.catchUp) this.armStall(r);
    const batch: Batch = { room: r.room, epoch: b.epoch, from: b.from, to: b.to, msgs: b.msgs, likes: b.likes, replay };
    this.emit('batch', batch);
  }

  /** (Re)starts the timer that gives up on a catch-up replay that stopped delivering. */
  private armStall(r: RoomState): void {
    const cu = r.catchUp;
    if (!cu) return;
    if (cu.stall !== undefined) this.clock.clearTimeout(cu.stall);
    cu.stall = this.clock.setTimeout(() => {
      if (r.catchUp !== cu) return;
      cu.stall = undefined;
      const stuck = r.queue.length > 0 || (r.lastSeq ?? 0) < cu.until;
      this.endCatchUp(r);
      if (stuck && this.roomStates.get(r.room) === r && r.active) this.recover(r);
    }, this.opt.recoveryStallMs);
  }

  private endCatchUp(r: RoomState): void {
    if (r.catchUp?.stall !== undefined) this.clock.clearTimeout(r.catchUp.stall);
    r.catchUp = undefined;
  }

  private enqueue(r: RoomState, b: QueuedBatch): void {
    let i = r.queue.length;
    while (i > 0 && r.queue[i - 1]!.from > b.from) i--;
    r.queue.splice(i, 0, b);
    // The recovery replay covers what is dropped here; only memory is at stake.
    if (r.queue.length > this.opt.maxQueuedBatches) r.queue.shift();
  }

  /**
   * Delivers queued batches that now follow on. While catching up, whatever does not follow
   * on yet waits for the replay; otherwise a remaining gap or overlap starts a recovery.
   */
  private drainQueue(r: RoomState): void {
    while (r.queue.length > 0 && this.roomStates.get(r.room) === r) {
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

  /** Rejoins with since = the last delivered seq (once per gap: not while a join is in flight). */
  private recover(r: RoomState): void {
    if (r.joinGen !== undefined || r.joinRetry !== undefined || r.catchUp) return;
    this.sendJoin(r, 'gap');
  }

  private onReply(f: Frame): void {
    if (typeof f.ref !== 'number') return;
    const p = this.settle(f.ref);
    p?.resolve?.(f);
  }

  /** Removes a pending request and clears its timer; returns it. */
  private settle(ref: number): { resolve?: (f: Frame) => void } | undefined {
    const p = this.pending.get(ref);
    if (!p) return undefined;
    this.pending.delete(ref);
    if (p.kind === 'request') {
      this.clock.clearTimeout(p.timer);
      return { resolve: p.resolve };
    }
    if (p.kind === 'leave') {
      this.clock.clearTimeout(p.timer);
      return { resolve: () => p.resolve() };
    }
    return {};
  }

  private onError(conn: Conn, f: Frame): void {
    const ref = typeof f.ref === 'number' ? f.ref : undefined;
    const p = ref !== undefined ? this.pending.get(ref) : undefined;
    if (p && ref !== undefined) {
      this.pending.delete(ref);
      switch (p.kind) {
        case 'join': {
          const r = this.roomStates.get(p.room);
          if (r && r.joinRef === ref) this.onJoinError(r, errorFromFrame(f, p.room));
          return;
        }
        case 'request':
          this.clock.clearTimeout(p.timer);
          return p.reject(errorFromFrame(f, p.room));
        case 'leave':
          this.clock.clearTimeout(p.timer);
          return p.resolve(); // NOT_JOINED: already out
        case 'heartbeat':
          return;
      }
    }
    if (ref === undefined && conn.urlRoom !== undefined && URL_JOIN_ERRORS.has(str(f.code))) {
      const r = this.roomStates.get(conn.urlRoom);
      conn.urlRoom = undefined;
      if (r && r.joinGen === conn.gen && r.joinRef === undefined) return this.onJoinError(r, errorFromFrame(f, r.room));
    }
    this.emit('error', errorFromFrame(f));
  }

  private onJoinError(r: RoomState, err: RoomcastError): void {
    const c = this.conn;
    if (c?.urlRoom === r.room) c.urlRoom = undefined;
    const reason = r.joinReason ?? 'resume';
    r.joinGen = r.joinRef = r.joinSince = r.joinReason = undefined;
    const retryable = err.code === 'RATE_LIMITED' || (err.code === 'UNAVAILABLE' && r.everJoined);
    if (retryable && c?.welcomed) {
      r.joinFailures++;
      const backoff = Math.min(this.opt.backoffMaxMs, this.opt.backoffBaseMs * 2 ** Math.min(r.joinFailures - 1, 30));
      const delay = (err.retryMs ?? 0) + Math.floor(this.random() * (err.retryMs !== undefined ? Math.min(250, backoff) : backoff));
      r.joinRetry = this.clock.setTimeout(() => {
        r.joinRetry = undefined;
        if (this.roomStates.get(r.room) === r && this.conn === c) this.sendJoin(r, reason);
      }, delay);
      return;
    }
    const hadWaiters = r.waiters.length > 0;
    this.forgetRoom(r, err);
    if (err.code === 'KICKED' && r.everJoined) {
      const ev: ClientEvents['kicked'] = { room: r.room, reason: err.message };
      if (err.retryMs !== undefined) ev.retryMs = err.retryMs;
      this.emit('kicked', ev);
    } else if (!hadWaiters) {
      this.emit('error', err);
    }
  }

  /** Drops a room from the client's state, rejecting whoever waits for its join. */
  private forgetRoom(r: RoomState, err: RoomcastError): void {
    if (this.roomStates.get(r.room) === r) this.roomStates.delete(r.room);
    if (r.joinRetry !== undefined) this.clock.clearTimeout(r.joinRetry);
    r.joinRetry = undefined;
    r.active = false;
    r.queue = [];
    this.endCatchUp(r);
    for (const w of r.waiters.splice(0)) w.reject(err);
    for (const d of r.deferred.splice(0)) d();
  }

  private onBye(conn: Conn, f: Frame): void {
    const reconnectMs = Math.max(0, num(f.reconnectMs));
    this.byeDeadline = this.clock.now() + reconnectMs;
    this.failures = 0;
    this.emit('bye', { reason: str(f.reason), reconnectMs });
    // The server closes the socket after flushing; if it has not by then, leave ourselves.
    if (this.byeTimer !== undefined) this.clock.clearTimeout(this.byeTimer);
    this.byeTimer = this.clock.setTimeout(() => {
      this.byeTimer = undefined;
      if (this.conn === conn) this.dropConnection(conn, { code: 1000, reason: 'bye' });
    }, reconnectMs);
  }

  // ---------------------------------------------------------------- heartbeat

  private startHeartbeat(conn: Conn): void {
    const hbMs = (this.session?.hb ?? 60) * 1000;
    const interval = Math.max(100, this.opt.pingIntervalMs ?? Math.min(30_000, Math.max(1_000, hbMs / 2)));
    const check = () => {
      this.heartbeatTimer = undefined;
      if (this.conn !== conn) return;
      const idle = this.clock.now() - conn.lastRx;
      if (idle < interval) {
        this.heartbeatTimer = this.clock.setTimeout(check, interval - idle);
        return;
      }
      const seenAtPing = conn.rxCount;
      const ref = this.nextRef();
      this.pending.set(ref, { kind: 'heartbeat' });
      this.write({ op: 'ping', ref });
      this.pongTimer = this.clock.setTimeout(() => {
        this.pongTimer = undefined;
        this.pending.delete(ref);
        if (this.conn !== conn) return;
        if (conn.rxCount === seenAtPing) {
          this.dropConnection(conn, { error: new RoomcastError('TIMEOUT', `no frame from the server for ${this.clock.now() - conn.lastRx} ms`) });
        } else {
          this.heartbeatTimer = this.clock.setTimeout(check, interval);
        }
      }, this.opt.pongTimeoutMs);
    };
    this.heartbeatTimer = this.clock.setTimeout(check, interval);
  }

  // ---------------------------------------------------------------- sending

  private nextRef(): number {
    this.refSeq = (this.refSeq + 1) % 0x7fffffff || 1;
    return this.refSeq;
  }

  private write(frame: Record<string, unknown>): boolean {
    const s = this.conn?.socket;
    if (!s || s.readyState !== OPEN) return false;
    try {
      s.send(this.encoder.encode(frame));
      return true;
    } catch {
      return false;
    }
  }

  /** Sends an op with a ref and resolves with the reply frame (rejects with a RoomcastError). */
  private request(frame: Record<string, unknown>, room?: string): Promise<Frame> {
    if (this.closed) return Promise.reject(new RoomcastError('CLOSED', 'client closed', { room }));
    if (room !== undefined && (typeof room !== 'string' || !ROOM_RE.test(room))) {
      return Promise.reject(new RoomcastError('BAD_ROOM', 'room id must be 1-64 chars of A-Z a-z 0-9 _ . : -', { room }));
    }
    const c = this.conn;
    if (!c?.welcomed) return Promise.reject(new RoomcastError('DISCONNECTED', `not connected (${this.current})`, { room }));
    if (room !== undefined && !this.roomStates.has(room)) {
      return Promise.reject(new RoomcastError('NOT_JOINED', 'not joined to this room', { room }));
    }
    return new Promise<Frame>((resolve, reject) => {
      const fail = (code: RoomcastErrorCode, message: string) => reject(new RoomcastError(code, message, { room }));
      const ref = this.nextRef();
      const timer = this.clock.setTimeout(() => {
        this.pending.delete(ref);
        fail('TIMEOUT', `no reply within ${this.opt.requestTimeoutMs} ms`);
      }, this.opt.requestTimeoutMs);
      const dispatch = () => {
        if (this.closed) return (this.clock.clearTimeout(timer), fail('CLOSED', 'client closed'));
        if (this.conn !== c) return (this.clock.clearTimeout(timer), fail('DISCONNECTED', 'the connection dropped before the request was sent'));
        this.pending.set(ref, { kind: 'request', resolve, reject, timer, room });
        if (!this.write({ ...frame, ref })) {
          this.pending.delete(ref);
          this.clock.clearTimeout(timer);
          fail('DISCONNECTED', 'the connection is not open');
        }
      };
      // Right after a reconnect the room's rejoin may still be in flight: send after it.
      const r = room !== undefined ? this.roomStates.get(room) : undefined;
      if (r && !r.active && r.joinGen === c.gen) r.deferred.push(dispatch);
      else dispatch();
    });
  }
}

// ------------------------------------------------------------------ helpers

function newRoom(room: string): RoomState {
  return {
    room,
    everJoined: false,
    active: false,
    joinFailures: 0,
    waiters: [],
    deferred: [],
    queue: [],
    mutedUntil: 0,
    roomMutedUntil: 0,
  };
}

async function callGetToken(get: () => string | Promise<string>): Promise<string> {
  const t = await get();
  if (typeof t !== 'string' || t.length === 0) throw new Error('getToken() did not return a token string');
  return t;
}

function toAck(f: Frame): Ack {
  const ack: Ack = { shown: f.shown === true };
  if (typeof f.seq === 'number') ack.seq = f.seq;
  return ack;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function num(v: unknown): number {
  return typeof v === 'number' ? v : Number.NaN;
}

function asBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  throw new Error('z frame without binary data');
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown })?.then === 'function';
}

function safeClose(s: SocketLike): void {
  try {
    if (s.readyState <= OPEN) s.close(1000);
  } catch {
    /* already closed */
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
