// The client: one connection at a time across a list of hosts, reconnecting with capped,
// jittered backoff; every joined room resumed with since/epoch; replies matched to requests.
// It composes the parts that own the rest: Link (one socket, frames in and out), TokenSession
// (the token and its refreshes), Heartbeat, RequestTable (refs in flight) and RoomSeq (each
// room's seq state, so the app sees each room's batches in order and exactly once per seq).
import { Decoder, Encoder } from '@msgpack/msgpack';
import { CLOSE } from '../protocol/errors.js';
import { MAX_LAST, ROOM_RE } from '../protocol/ops.js';
import { backoffMs } from '../util/backoff.js';
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { Emitter } from './emitter.js';
import { RoomcastError, errorFromFrame, type RoomcastErrorCode } from './errors.js';
import { Heartbeat } from './heartbeat.js';
import { defaultInflate, loadZlib, type Inflate } from './inflate.js';
import { LikeBatcher } from './like-batch.js';
import { Link, safeClose } from './link.js';
import { RequestTable } from './requests.js';
import { newRoom, num, RoomSeq, str, type JoinReason, type RoomState } from './room-seq.js';
import { MIN_REFRESH_MS, TokenSession } from './session.js';
import { defaultSocketFactory, socketFactoryFor, tokenProtocols, type SocketFactory, type SocketLike, type WebSocketConstructor } from './transport.js';
import type { Ack, ClientEvents, ConnectionState, Frame, JoinOptions, JoinResult, RoomInfo, StateEvent } from './types.js';

export interface ConnectOptions {
  /** WebSocket endpoint, e.g. `wss://chat.example.com/ws` (`http(s)://` works too; an empty path means `/ws`). */
  url?: string;
  /** Several endpoints: attempts rotate through them in order. */
  urls?: readonly string[];
  /** A token; with `getToken` too, the first one to use. */
  token?: string;
  /** Returns a fresh token; called when there is none, before each connect if the token expires within `tokenRefreshMarginMs`, ahead of expiry (sent on the open connection as a `refresh`), on the server's `expiring` hint, and after the server refused one or closed with 4010. */
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
  /** Backoff: the first retry waits up to `backoffBaseMs`, doubling per failure up to `backoffMaxMs` (equal jitter: between half and all of that). */
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
  /** Sum a room's likes (sent without ack) over this long into one frame, at most 10 per frame (0: a frame per like). */
  likeBatchMs?: number;
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
  likeBatchMs: 1_000,
};
/** Errors without a ref that answer the join requested in the URL query. */
const URL_JOIN_ERRORS = new Set(['BAD_ROOM', 'BAD_FRAME', 'FORBIDDEN', 'KICKED', 'TOO_MANY_ROOMS', 'RATE_LIMITED', 'UNAVAILABLE']);
/** Unexplained connect failures before the token is suspected (browsers cannot see a 401). */
const SUSPECT_TOKEN_AFTER = 2;
const SUSPECT_TOKEN_MIN_AGE_MS = 5 * 60_000;
/** A join retried after RATE_LIMITED waits the server's retryMs plus at most this jitter. */
const JOIN_RETRY_JITTER_MS = 250;

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
  private readonly requests: RequestTable;
  private readonly heartbeat: Heartbeat;
  private readonly tokens: TokenSession;
  private readonly seq: RoomSeq;
  private readonly likes: LikeBatcher;

  private current: ConnectionState = 'connecting';
  private closed = false;
  private gen = 0;
  private conn: Link | undefined;
  private urlIndex = 0;
  private failures = 0;
  private unexplainedFailures = 0;
  private readonly roomStates = new Map<string, RoomState>();
  private readyWaiters: Array<{ resolve: () => void; reject: (e: RoomcastError) => void }> = [];
  private session: { sid: string; uid: string; node: string; hb: number } | undefined;

  private retryTimer: TimerHandle | undefined;
  private connectTimer: TimerHandle | undefined;
  private byeTimer: TimerHandle | undefined;
  /** set by `bye`: when the next attempt may start */
  private byeDeadline: number | undefined;

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
    this.likes = new LikeBatcher(this.clock, this.opt.likeBatchMs, (room, count) =>
      this.notify(count > 1 ? { op: 'send', room, kind: 'like', count } : { op: 'send', room, kind: 'like' }, room),
    );
    this.requests = new RequestTable(this.clock);
    this.heartbeat = new Heartbeat(this.clock);
    this.tokens = new TokenSession({
      clock: this.clock,
      getToken: options.getToken,
      marginMs: this.opt.tokenRefreshMarginMs,
      error: (e) => this.emit('error', e),
      onFresh: (t) => this.sendRefresh(t),
    });
    this.seq = new RoomSeq({
      clock: this.clock,
      maxQueuedBatches: this.opt.maxQueuedBatches,
      recoveryStallMs: this.opt.recoveryStallMs,
      emit: (event, payload) => this.emit(event, payload),
      current: (r) => this.roomStates.get(r.room) === r,
      rejoin: (r) => this.sendJoin(r, 'gap'),
      protocolError: (message, room) => new RoomcastError('PROTOCOL', message, { room }),
    });
    if (options.token !== undefined) this.tokens.set(options.token);
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
      if (options.last !== undefined) {
        if (!Number.isSafeInteger(options.last) || options.last < 0 || options.last > MAX_LAST) {
          return Promise.reject(new RoomcastError('BAD_FRAME', `last must be an integer 0-${MAX_LAST}`, { room }));
        }
        r.last = options.last;
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
    const ref = this.requests.nextRef();
    return new Promise<void>((resolve) => {
      const timer = this.clock.setTimeout(() => {
        this.requests.delete(ref);
        resolve();
      }, this.opt.requestTimeoutMs);
      this.requests.set(ref, { kind: 'leave', resolve, timer });
      if (!c.write({ op: 'leave', ref, room })) {
        this.requests.take(ref);
        resolve();
      }
    });
  }

  /** Sends a chat message; resolves with the ack ({shown, seq}) or rejects with a RoomcastError. */
  async send(room: string, text: string): Promise<Ack> {
    if (typeof text !== 'string' || text.length === 0) throw new RoomcastError('BAD_FRAME', 'text must be a non-empty string', { room });
    return toAck(await this.request({ op: 'send', room, kind: 'chat', body: text }, room));
  }

  /**
   * Sends a like (likes are delivered as counts, in `Batch.likes`). By default it goes without
   * `ref`, which the server does not ack (docs/protocol.md §8), summed with the room's other
   * likes of the next `likeBatchMs` into one frame (`count`): the promise resolves once that
   * frame is written, and a refusal (RATE_LIMITED, MUTED, ...) arrives as an `error` event.
   * With `{ack: true}` it is a request like `send`, sent at once, and resolves with the ack.
   */
  like(room: string): Promise<void>;
  like(room: string, options: { ack: true }): Promise<Ack>;
  async like(room: string, options?: { ack?: boolean }): Promise<Ack | void> {
    if (options?.ack) return toAck(await this.request({ op: 'send', room, kind: 'like' }, room));
    const refused = this.unsendable(room);
    if (refused) throw refused;
    return this.likes.add(room);
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
    this.likes.flushAll(); // taps still pending go out before the close frame
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
      await this.tokens.ensure();
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
      const token = this.tokens.token;
      socket = await this.factory(url, this.tokenInHeader && token !== undefined ? tokenProtocols(token) : undefined);
    } catch (err) {
      if (gen !== this.gen || this.closed) return;
      return this.retry(new RoomcastError('DISCONNECTED', `cannot open a WebSocket to ${shown}: ${String((err as Error)?.message ?? err)}`, { cause: err }));
    }
    if (gen !== this.gen || this.closed) {
      safeClose(socket);
      return;
    }
    const conn = new Link({
      gen,
      socket,
      url: shown,
      clock: this.clock,
      inflate: this.inflater,
      encoder: this.encoder,
      decoder: this.decoder,
      handler: {
        frame: (link, f) => {
          if (this.conn === link) this.handle(link, f);
        },
        closed: (link, code, reason) => this.dropConnection(link, { code, reason }),
        error: (e) => this.emit('error', e),
      },
    });
    this.conn = conn;
    if (urlRoom) {
      conn.urlRoom = urlRoom.room;
      urlRoom.joinGen = gen;
      urlRoom.joinRef = undefined;
      urlRoom.joinSince = urlRoom.lastSeq;
      urlRoom.joinReason = urlRoom.everJoined ? 'resume' : 'user';
    }
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
        } else if (r.last) q.set('last', String(r.last));
        break;
      }
    }
    const shown = new URL(u.toString());
    const token = this.tokens.token;
    if (token !== undefined && !this.tokenInHeader) {
      q.set('token', token);
      shown.searchParams.set('token', 'redacted');
    }
    return { url: u.toString(), shown: shown.toString(), urlRoom };
  }

  /** A fresh token while connected: the server gets it as a `refresh` (PROTOCOL §9). */
  private sendRefresh(token: string): void {
    if (!this.conn?.welcomed) return; // the next connect uses it
    this.request({ op: 'refresh', token }).then(
      () => undefined,
      (e: RoomcastError) => {
        if (this.closed || e.code === 'DISCONNECTED' || e.code === 'CLOSED') return; // the reconnect carries the token
        this.emit('error', e);
        this.tokens.schedule(MIN_REFRESH_MS);
      },
    );
  }

  /** Schedules the next attempt: bye's reconnectMs, else capped jittered exponential backoff. */
  private retry(error?: RoomcastError, closeCode?: number): void {
    if (this.closed) return;
    let delay: number;
    if (this.byeDeadline !== undefined) {
      delay = Math.max(0, this.byeDeadline - this.clock.now());
      this.byeDeadline = undefined;
    } else {
      delay = backoffMs(this.failures, { baseMs: this.opt.backoffBaseMs, maxMs: this.opt.backoffMaxMs }, this.random);
      this.failures++;
    }
    this.setState('reconnecting', { delayMs: delay, error, closeCode });
    this.retryTimer = this.clock.setTimeout(() => void this.attempt(), delay);
  }

  /** The connection is gone (closed by either side, failed, or abandoned by us). */
  private dropConnection(conn: Link, why: { code?: number; reason?: string; error?: RoomcastError }): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    this.clearConnTimers();
    conn.abandon();
    const now = this.clock.now();
    let error = why.error;
    if (!conn.welcomed) {
      if (conn.status === 401 || conn.status === 403) {
        error = new RoomcastError('UNAUTHORIZED', `the server refused the token (HTTP ${conn.status})`);
        this.emit('error', error);
        this.tokens.distrust();
      } else {
        error ??= new RoomcastError('DISCONNECTED', `cannot connect to ${conn.url}${conn.errorText ? `: ${conn.errorText}` : ''}`);
        // Browsers never expose the upgrade's status: a refused token looks like a socket
        // closed before `welcome` for no stated reason (not a timeout, not a known status).
        if (conn.status === undefined && why.error === undefined && ++this.unexplainedFailures >= SUSPECT_TOKEN_AFTER && this.tokens.age() >= SUSPECT_TOKEN_MIN_AGE_MS) {
          this.tokens.distrust();
        }
      }
    } else {
      if (now - conn.openedAt >= this.opt.stableAfterMs) this.failures = 0;
      error ??= new RoomcastError('DISCONNECTED', `connection closed (${why.code ?? 1006}${why.reason ? ` ${why.reason}` : ''})`);
    }
    // Requests in flight are lost with the connection; rooms are resumed on the next one.
    this.requests.failAll((room) => new RoomcastError('DISCONNECTED', 'the connection dropped before the reply', { room }));
    for (const r of this.roomStates.values()) {
      r.active = false;
      r.joinGen = undefined;
      r.joinRef = undefined;
      if (r.joinRetry !== undefined) this.clock.clearTimeout(r.joinRetry);
      r.joinRetry = undefined;
      this.seq.clear(r);
      for (const d of r.deferred.splice(0)) d();
    }
    if (why.code === CLOSE.BAD_FRAMES) {
      const e = new RoomcastError('PROTOCOL', 'the server closed the connection for bad frames (4008); not reconnecting');
      this.emit('error', e);
      return this.shutdown(e);
    }
    if (why.code === CLOSE.DISCONNECTED) {
      // The backend ended this user's session (POST /v1/users/:uid/disconnect): stay out.
      const e = new RoomcastError('UNAUTHORIZED', `disconnected by the server (4011${why.reason ? ` ${why.reason}` : ''}); not reconnecting`);
      this.emit('error', e);
      return this.shutdown(e);
    }
    if (why.code === CLOSE.TOKEN_EXPIRED) this.tokens.distrust(); // reconnect with a fresh token
    this.retry(error, why.code);
  }

  private clearConnTimers(): void {
    for (const t of [this.connectTimer, this.byeTimer]) if (t !== undefined) this.clock.clearTimeout(t);
    this.connectTimer = this.byeTimer = undefined;
    this.heartbeat.stop();
  }

  private shutdown(reason: RoomcastError): void {
    this.closed = true;
    this.gen++;
    const c = this.conn;
    this.conn = undefined;
    this.clearConnTimers();
    if (this.retryTimer !== undefined) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.tokens.stop();
    this.requests.failAll((room) => new RoomcastError(reason.code, reason.message, { room }));
    for (const r of [...this.roomStates.values()]) this.forgetRoom(r, new RoomcastError(reason.code, reason.message, { room: r.room }));
    for (const w of this.readyWaiters.splice(0)) w.reject(reason);
    c?.abandon(reason.code !== 'CLOSED'); // close() closes the socket itself and waits for it
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

  private handle(conn: Link, f: Frame): void {
    switch (f.op) {
      case 'welcome':
        return this.onWelcome(conn, f);
      case 'joined':
        return this.onJoined(conn, f);
      case 'batch': {
        const r = this.roomStates.get(str(f.room));
        return r && this.seq.batch(r, f);
      }
      case 'ack':
      case 'pong':
      case 'refreshed':
        if (typeof f.ref === 'number') this.requests.resolve(f.ref, f);
        return;
      case 'left':
        return this.onLeft(f);
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
      case 'expiring':
        return this.tokens.refreshNow();
      case 'bye':
        return this.onBye(conn, f);
      default:
        return; // ops added by later protocol versions
    }
  }

  private onWelcome(conn: Link, f: Frame): void {
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
    const ref = this.requests.nextRef();
    r.joinGen = c.gen;
    r.joinRef = ref;
    r.joinSince = r.lastSeq;
    r.joinReason = reason;
    this.requests.set(ref, { kind: 'join', room: r.room });
    const since = r.lastSeq;
    const last = since === undefined && r.last ? r.last : undefined;
    c.write({ op: 'join', ref, room: r.room, since, epoch: since !== undefined ? r.epoch : undefined, last });
  }

  private onJoined(conn: Link, f: Frame): void {
    const room = str(f.room);
    if (typeof f.ref === 'number') this.requests.delete(f.ref);
    const r = this.roomStates.get(room);
    if (!r) {
      // Left while the join was in flight: the server has us in the room; leave again.
      conn.write({ op: 'leave', room });
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
    this.seq.joined(r, asked, recovered, epoch, seq);
    const result: JoinResult = { room, epoch, seq, members: r.members };
    if (recovered !== undefined) result.recovered = recovered;
    this.emit('joined', { ...result, resumed: reason !== 'user' });
    for (const w of r.waiters.splice(0)) w.resolve(result);
    for (const d of r.deferred.splice(0)) d();
    this.seq.drain(r);
  }

  /** `left` answers a leave; without a ref, a refreshed token no longer allows the room. */
  private onLeft(f: Frame): void {
    if (typeof f.ref === 'number') return this.requests.resolve(f.ref, f);
    const room = str(f.room);
    const r = this.roomStates.get(room);
    if (!r) return;
    const e = new RoomcastError('FORBIDDEN', 'the refreshed token no longer allows this room', { room });
    this.forgetRoom(r, e);
    this.emit('error', e);
  }

  private onError(conn: Link, f: Frame): void {
    const ref = typeof f.ref === 'number' ? f.ref : undefined;
    const p = ref !== undefined ? this.requests.take(ref) : undefined;
    if (p) {
      switch (p.kind) {
        case 'join': {
          const r = this.roomStates.get(p.room);
          if (r && r.joinRef === ref) this.onJoinError(r, errorFromFrame(f, p.room));
          return;
        }
        case 'request':
          return p.reject(errorFromFrame(f, p.room));
        case 'leave':
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
      // The server's retryMs when it gave one (plus a little jitter), else the backoff.
      const delay =
        err.retryMs !== undefined
          ? err.retryMs + Math.floor(this.random() * JOIN_RETRY_JITTER_MS)
          : backoffMs(r.joinFailures, { baseMs: this.opt.backoffBaseMs, maxMs: this.opt.backoffMaxMs }, this.random);
      r.joinFailures++;
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
    this.seq.clear(r);
    for (const w of r.waiters.splice(0)) w.reject(err);
    for (const d of r.deferred.splice(0)) d();
  }

  private onBye(conn: Link, f: Frame): void {
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

  private startHeartbeat(conn: Link): void {
    const hbMs = (this.session?.hb ?? 60) * 1000;
    const interval = Math.max(100, this.opt.pingIntervalMs ?? Math.min(30_000, Math.max(1_000, hbMs / 2)));
    this.heartbeat.start(interval, this.opt.pongTimeoutMs, {
      lastRx: () => conn.lastRx,
      rxCount: () => conn.rxCount,
      ping: () => {
        const ref = this.requests.nextRef();
        this.requests.set(ref, { kind: 'heartbeat' });
        conn.write({ op: 'ping', ref });
        return () => this.requests.delete(ref);
      },
      dead: (idleMs) => {
        if (this.conn === conn) this.dropConnection(conn, { error: new RoomcastError('TIMEOUT', `no frame from the server for ${idleMs} ms`) });
      },
    });
  }

  // ---------------------------------------------------------------- sending

  /** Sends an op with a ref and resolves with the reply frame (rejects with a RoomcastError). */
  /** Why a frame for `room` cannot go out now, if it cannot. */
  private unsendable(room?: string): RoomcastError | undefined {
    if (this.closed) return new RoomcastError('CLOSED', 'client closed', { room });
    if (room !== undefined && (typeof room !== 'string' || !ROOM_RE.test(room))) {
      return new RoomcastError('BAD_ROOM', 'room id must be 1-64 chars of A-Z a-z 0-9 _ . : -', { room });
    }
    if (!this.conn?.welcomed) return new RoomcastError('DISCONNECTED', `not connected (${this.current})`, { room });
    if (room !== undefined && !this.roomStates.has(room)) return new RoomcastError('NOT_JOINED', 'not joined to this room', { room });
    return undefined;
  }

  /** Right after a reconnect the room's rejoin may still be in flight: `dispatch` runs after it. */
  private whenRejoined(c: Link, room: string | undefined, dispatch: () => void): void {
    const r = room !== undefined ? this.roomStates.get(room) : undefined;
    if (r && !r.active && r.joinGen === c.gen) r.deferred.push(dispatch);
    else dispatch();
  }

  /** A frame that asks for no reply: resolves once written. */
  private notify(frame: Record<string, unknown>, room: string): Promise<void> {
    const refused = this.unsendable(room);
    if (refused) return Promise.reject(refused);
    const c = this.conn!;
    return new Promise<void>((resolve, reject) => {
      this.whenRejoined(c, room, () => {
        if (this.closed) return reject(new RoomcastError('CLOSED', 'client closed', { room }));
        if (this.conn !== c || !c.write(frame)) return reject(new RoomcastError('DISCONNECTED', 'the connection is not open', { room }));
        resolve();
      });
    });
  }

  private request(frame: Record<string, unknown>, room?: string): Promise<Frame> {
    const refused = this.unsendable(room);
    if (refused) return Promise.reject(refused);
    const c = this.conn!;
    return new Promise<Frame>((resolve, reject) => {
      const fail = (code: RoomcastErrorCode, message: string) => reject(new RoomcastError(code, message, { room }));
      const ref = this.requests.nextRef();
      const timer = this.clock.setTimeout(() => {
        this.requests.delete(ref);
        fail('TIMEOUT', `no reply within ${this.opt.requestTimeoutMs} ms`);
      }, this.opt.requestTimeoutMs);
      this.whenRejoined(c, room, () => {
        if (this.closed) return (this.clock.clearTimeout(timer), fail('CLOSED', 'client closed'));
        if (this.conn !== c) return (this.clock.clearTimeout(timer), fail('DISCONNECTED', 'the connection dropped before the request was sent'));
        this.requests.set(ref, { kind: 'request', resolve, reject, timer, room });
        if (!c.write({ ...frame, ref })) {
          this.requests.take(ref);
          fail('DISCONNECTED', 'the connection is not open');
        }
      });
    });
  }
}

function toAck(f: Frame): Ack {
  const ack: Ack = { shown: f.shown === true };
  if (typeof f.seq === 'number') ack.seq = f.seq;
  return ack;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
