// The WebSocket gateway: the only code that touches uWS sockets. Upgrades (token checked
// before any socket exists), frames in to the engine, room frames out through uWS publish.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { AuthError, guestCredentials, type Credentials, type TokenVerifier } from '../auth/tokens.js';
import { closeCodeLabel, type Metrics } from '../metrics/metrics.js';
import { compressOver, encodeFrame, frameBytes } from '../protocol/codec.js';
import type { ServerOp } from '../protocol/ops.js';
import { CLOSE } from '../protocol/errors.js';
import { WS_PROTOCOL, WS_TOKEN_PROTOCOL_PREFIX } from '../protocol/ops.js';
import { CONN_BITS_FREE, ConnState, type Connection, type Delivered, type InitialJoin, type RoomPublisher } from '../rooms/connection.js';
import { loadUws, type HttpRequest, type HttpResponse, type TemplatedApp, type WebSocket, type us_listen_socket, type us_socket_context_t } from './uws.js';
import { contentLength, mount, refuseFraming, statusLine, type Route } from './http.js';
import { RateLimiter } from '../util/token-bucket.js';
import { freePort } from './free-port.js';
import { createClientIp, type ClientIp } from './client-ip.js';
import { SlowWatch } from './slow-watch.js';
import { SocketList, type Linked } from './socket-list.js';
import { MemberTalk } from './member-talk.js';
import { RoomFanout, sliceFor, type FanoutFrame, type ShardHost, type ShardMember } from './room-fanout.js';

/** What the gateway calls into (the engine). */
export interface GatewayHandler {
  /** `sid` is the session id for the welcome; the connection does not keep it (~40 bytes a member). */
  open(c: Connection, sid: string, initial?: InitialJoin): void;
  frame(c: Connection, data: Uint8Array, isBinary: boolean): void;
  closed(c: Connection): void;
  /** Refuses an authenticated user's upgrade (banned, too many sockets); undefined admits it. */
  admit?(uid: string): { status: number; code: string; message: string } | undefined;
}

export interface GatewayOptions {
  host: string;
  port: number;
  verifier: TokenVerifier;
  allowGuests: boolean;
  /** Rooms guests may join (rooms claim syntax). */
  guestRooms: readonly string[];
  /** Upgrades per second per client IP (0 = unlimited) and the burst. */
  connectRate: number;
  connectBurst: number;
  /** Proxies whose forwarding headers name the client (IPs/CIDRs). */
  trustProxy: readonly string[];
  maxFrameBytes: number;
  maxHttpBodyBytes: number;
  idleTimeoutSec: number;
  maxBackpressure: number;
  compressThreshold: number;
  /** Members per fan-out shard: a room's frame is written to one shard per loop turn (0: one shard). */
  fanoutShardMembers: number;
  fanoutSliceMs: number;
  /** How long a reply sent with the next batch may wait for one: the effective tick. */
  rideMs: () => number;
  metrics: Metrics;
  log: Logger;
}

/** What the upgrade learned, until `open` turns it into the connection. */
interface Upgraded {
  sid: string;
  creds: Credentials;
  compress: boolean;
  initial?: InitialJoin;
}

/**
 * uWS copies the user data's properties onto each socket's JS object: one property keeps
 * that object small (five of them, changed again in `open`, cost ~0.3 KiB per member).
 */
interface UserData {
  c: Upgraded | SocketConnection;
}

/** The socket's connection, once `open` made it. */
const connOf = (ws: WebSocket<UserData>): SocketConnection | undefined => {
  const c = ws.getUserData().c;
  return c instanceof SocketConnection ? c : undefined;
};
/** A shard's topic: shard 0 is the room's own (`p<room>`, `z<room>`); `#` never occurs in a room name. */
const topic = (room: string, compressed: boolean, shard: number) => (compressed ? 'z' : 'p') + room + (shard === 0 ? '' : '#' + shard);
/** Never published to; see SocketConnection.standAside. Room topics start with `p` or `z`. */
const ANCHOR_TOPIC = '~';
const SLOW_SWEEP_MS = 1000;
const NO_SKIPS: readonly [number, number] = [0, 0];
/** Replies held for a socket that does not read, before it is closed with 4009. */
const REPLY_QUEUE_BYTES = 1024 * 1024;
/** What a queued frame costs beyond its bytes (the typed array and its backing store): a
 * 22-byte pong holds ~200 bytes of heap, so the cap counts this too. */
const QUEUED_FRAME_OVERHEAD = 256;

/** SocketConnection's flags in ConnState's `bits`. The held replies wait for the next fan-out
 * (WAIT_BATCH) or for this turn's end (WAIT_TURN), never both. */
const CLOSED = CONN_BITS_FREE;
const COMPRESS = CONN_BITS_FREE << 1;
const WAIT_BATCH = CONN_BITS_FREE << 2;
const WAIT_TURN = CONN_BITS_FREE << 3;
const WAITS = WAIT_BATCH | WAIT_TURN;
/** `subShard` is kept in `bits` from this bit up, plus one (-1, waiting for a pass, is 0): a field of its own costs 8 bytes per member. */
const SHARD_SHIFT = 8;
const FLAG_MASK = (1 << SHARD_SHIFT) - 1;

/** A socket that fell behind: replies uWS refused over the backpressure limit, and drain waiters. */
class Backlog {
  /** Replies not written yet, in order. */
  readonly frames: Uint8Array[] = [];
  bytes = 0;
  waiters: Array<{ maxBytes: number; resolve: () => void }> = [];
}

/** The engine's state and room set are this object's own fields (ConnState): no objects of their own. */
class SocketConnection extends ConnState implements Connection, ShardMember, Linked<SocketConnection> {
  /** Its neighbours in the gateway's list of open sockets. */
  prev: SocketConnection | undefined = undefined;
  next: SocketConnection | undefined = undefined;
  /**
   * Its fan-out shard in each room it is subscribed to (room-fanout.ts; -1 while it waits for a
   * pass to end): one room in two fields, a Map only for two or more (RoomSet's reasoning).
   * The room's name is the fan-out's string, one shared by every member.
   */
  private subRoom: string | undefined;
  private subMore: Map<string, number> | undefined;
  /** Replies not written yet (one frame, or several), in order; what they wait for is in `bits`. */
  private held: Uint8Array | Uint8Array[] | undefined;
  /** Created on first use and dropped once empty: most sockets never queue a reply nor wait for a drain. */
  private backlog: Backlog | undefined;

  constructor(
    private readonly ws: WebSocket<UserData>,
    private readonly gw: Gateway,
    public creds: Credentials,
    compress: boolean,
  ) {
    super();
    if (compress) this.bits |= COMPRESS;
  }

  /** uWS closed the socket (set by the gateway's close handler). */
  get closed(): boolean {
    return (this.bits & CLOSED) !== 0;
  }

  markClosed(): void {
    this.bits |= CLOSED;
  }

  get compress(): boolean {
    return (this.bits & COMPRESS) !== 0;
  }

  /** Its shard in `subRoom`. */
  private get subShard(): number {
    return (this.bits >> SHARD_SHIFT) - 1;
  }

  private set subShard(shard: number) {
    this.bits = (this.bits & FLAG_MASK) | ((shard + 1) << SHARD_SHIFT);
  }

  send(op: ServerOp): void {
    if (this.closed) return;
    this.sendEncoded(this.encode(op));
  }

  sendWithBatch(op: ServerOp, room: string): void {
    if (this.closed) return;
    this.hold(this.encode(op));
    if ((this.bits & WAITS) !== 0) return; // written with the fan-out, or sooner
    this.bits |= WAIT_BATCH;
    this.gw.ride(this, room);
  }

  private encode(op: ServerOp): Uint8Array {
    const plain = encodeFrame(op);
    return this.compress ? compressOver(plain, this.gw.compressThreshold) : plain;
  }

  /**
   * Replies (acks, joined, errors, pong, replay) are never dropped: what uWS refuses over the
   * backpressure limit waits in the backlog for `drain`. Room batches are not sent this way (uWS
   * publish skips a slow socket; the member recovers them with `since`). Replies of one loop
   * turn are held and written together under one uWS cork (one write, not one per reply).
   */
  sendEncoded(frame: Uint8Array): void {
    if (this.closed) return;
    this.hold(frame);
    if ((this.bits & WAIT_TURN) !== 0) return;
    this.bits = (this.bits & ~WAITS) | WAIT_TURN;
    this.gw.hold(this);
  }

  private hold(frame: Uint8Array): void {
    const held = this.held;
    if (held === undefined) this.held = frame;
    else if (held instanceof Uint8Array) this.held = [held, frame];
    else held.push(frame);
  }

  /** Writes the held replies under one cork; returns how many frames that was. */
  flush(): number {
    return this.flushWith(undefined);
  }

  /**
   * Writes `batch` (this socket's copy of a room's frame, kept out of the publish) and then the
   * held replies, under one cork: one socket write for all, where a socket write costs ~10 µs
   * and the bytes almost nothing. Publishing to the socket and sending the replies after it
   * under a cork takes two: uWS's topic drain inside that send uncorks on its own.
   */
  flushWith(batch: Uint8Array | undefined): number {
    const held = this.held;
    this.held = undefined;
    this.bits &= ~WAITS;
    if (this.closed) return 0;
    // As uWS publish does, a socket over maxBackpressure misses the batch (it recovers with `since`).
    const frame = batch && this.ws.getBufferedAmount() <= this.gw.maxBackpressure ? batch : undefined;
    if (held === undefined && frame === undefined) return 0;
    this.ws.cork(() => {
      if (frame) this.write(frame);
      if (held instanceof Uint8Array) this.write(held);
      else if (held) for (const f of held) this.write(f);
    });
    return held === undefined ? 0 : held instanceof Uint8Array ? 1 : held.length;
  }

  private write(frame: Uint8Array): void {
    let b = this.backlog;
    if (b === undefined || b.frames.length === 0) {
      if (this.ws.send(frame, true) !== 2) return;
      b ??= this.backlog = new Backlog();
    }
    b.frames.push(frame);
    b.bytes += frame.byteLength + QUEUED_FRAME_OVERHEAD;
    if (b.bytes > REPLY_QUEUE_BYTES) this.close(CLOSE.TOO_SLOW, 'replies piled up; reconnect');
  }

  subscribe(room: string): void {
    if (this.closed || this.shardIn(room) !== undefined) return;
    const fanout = this.gw.fanoutFor(room);
    const shard = fanout.join(this);
    this.setShard(fanout.room, shard);
    if (shard >= 0) this.ws.subscribe(topic(room, this.compress, shard));
  }

  enterShard(room: string, shard: number): void {
    this.setShard(room, shard);
    this.ws.subscribe(topic(room, this.compress, shard));
  }

  unsubscribe(room: string): void {
    const shard = this.shardIn(room);
    if (this.closed || shard === undefined) return;
    this.dropShard(room);
    if (shard < 0) return; // still waiting: the fan-out skips it
    this.ws.unsubscribe(topic(room, this.compress, shard));
    this.gw.leftShard(room, shard);
  }

  /** Closed: uWS took it out of its topics; the fan-outs still count it. */
  leaveShards(): void {
    if (this.subMore !== undefined) for (const [room, shard] of this.subMore) this.gw.leftShard(room, shard);
    else if (this.subRoom !== undefined) this.gw.leftShard(this.subRoom, this.subShard);
    this.subRoom = undefined;
    this.subMore = undefined;
  }

  shardIn(room: string): number | undefined {
    if (this.subMore !== undefined) return this.subMore.get(room);
    return this.subRoom === room ? this.subShard : undefined;
  }

  private setShard(room: string, shard: number): void {
    if (this.subMore !== undefined) this.subMore.set(room, shard);
    else if (this.subRoom === undefined || this.subRoom === room) {
      this.subRoom = room;
      this.subShard = shard;
    } else {
      this.subMore = new Map([[this.subRoom, this.subShard], [room, shard]]);
      this.subRoom = undefined;
    }
  }

  private dropShard(room: string): void {
    const more = this.subMore;
    if (more === undefined) {
      if (this.subRoom === room) this.subRoom = undefined;
      return;
    }
    more.delete(room);
    if (more.size > 1) return;
    this.subMore = undefined;
    for (const [r, shard] of more) {
      this.subRoom = r;
      this.subShard = shard;
    }
  }

  /**
   * Out of the room's topic for one publish. uWS frees a socket's subscriber, and drops what
   * it had pending, when it leaves its last topic: the anchor topic keeps it meanwhile.
   */
  standAside(room: string, shard: number): void {
    this.ws.subscribe(ANCHOR_TOPIC);
    this.ws.unsubscribe(topic(room, this.compress, shard));
  }

  rejoin(room: string, shard: number): void {
    if (this.closed) return;
    this.ws.subscribe(topic(room, this.compress, shard));
    this.ws.unsubscribe(ANCHOR_TOPIC);
  }

  /** Holds replies for the next fan-out, and `room`'s would be one. */
  ridesWith(room: string): boolean {
    // In a shard, not just in the room: a joiner gets its replay before any batch.
    return (this.bits & (WAIT_BATCH | CLOSED)) === WAIT_BATCH && (this.shardIn(room) ?? -1) >= 0;
  }

  waitsForBatch(): boolean {
    return (this.bits & (WAIT_BATCH | CLOSED)) === WAIT_BATCH;
  }

  /** Gets the room's frames: in a shard, or waiting for one (it gets every frame not yet in hand). */
  subscribed(room: string): boolean {
    return !this.closed && this.shardIn(room) !== undefined;
  }

  drained(maxBytes: number): Promise<void> {
    this.flush();
    if (this.closed || (!this.backlog?.frames.length && this.ws.getBufferedAmount() <= maxBytes)) return Promise.resolve();
    return new Promise((resolve) => (this.backlog ??= new Backlog()).waiters.push({ maxBytes, resolve }));
  }

  /** Replies or drain waiters wait for its drain events (most sockets with a send backlog have neither). */
  get backlogged(): boolean {
    return this.backlog !== undefined;
  }

  /** uWS drain (or close): write what was queued, then wake the waiters whose threshold is met. */
  onDrain(): void {
    const b = this.backlog;
    if (b === undefined) return;
    const frames = b.frames;
    while (!this.closed && frames.length > 0) {
      const next = frames[0]!;
      if (this.ws.send(next, true) === 2) break;
      frames.shift();
      b.bytes -= next.byteLength + QUEUED_FRAME_OVERHEAD;
    }
    if (b.waiters.length > 0) {
      const buffered = this.closed ? 0 : this.ws.getBufferedAmount();
      const free = this.closed || frames.length === 0;
      const still: typeof b.waiters = [];
      for (const w of b.waiters) (free && buffered <= w.maxBytes ? w.resolve() : still.push(w));
      b.waiters = still;
    }
    if (frames.length === 0 && b.waiters.length === 0) this.backlog = undefined;
  }

  bufferedAmount(): number {
    return this.closed ? 0 : this.ws.getBufferedAmount();
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.flush(); // a bye or error sent just before the close goes first
    this.ws.end(code, reason);
  }
}

export class Gateway implements RoomPublisher, ShardHost<SocketConnection> {
  readonly app: TemplatedApp;
  readonly metrics: Metrics;
  readonly compressThreshold: number;
  readonly maxBackpressure: number;
  private listenSocket: us_listen_socket | undefined;
  private handler: GatewayHandler | undefined;
  private readonly sockets = new SocketList<SocketConnection>();
  /** Rooms with local subscribers, or frames still being written. */
  private readonly fanouts = new Map<string, RoomFanout<SocketConnection>>();
  private readonly talk = new MemberTalk();
  private readonly sliceMs = (): number => sliceFor(this.o.fanoutSliceMs, this.talking);
  /** Drop candidates: sockets seen with a backlog (at a sweep or a drain) lately. */
  private readonly slow = new SlowWatch<SocketConnection>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly uws = loadUws();
  private readonly perIp: RateLimiter | undefined;
  private readonly clientIp: ClientIp;
  /** Set by closeAll: a stopped node must not keep answering on kept-alive HTTP connections. */
  private shut = false;
  /** Sockets holding replies of this loop turn; written by one microtask at the turn's end. */
  private holding: SocketConnection[] = [];
  private readonly flushHeld = () => {
    const conns = this.holding;
    this.holding = [];
    this.flushAll(conns);
  };
  /**
   * Sockets holding replies for the next fan-out of a room (sendWithBatch), or for rideMs at
   * most, by room: a publish looks at its room's riders only, not at every rider of the worker.
   */
  private riding = new Map<string, Set<SocketConnection>>();
  private rideTimer: NodeJS.Timeout | undefined;
  private readonly flushRiders = () => {
    this.rideTimer = undefined;
    // Written on the next turn, as an append's fan-out is (TickPipeline.tick): a fan-out due on
    // this turn still takes them with its batch. Riders that come later start a timer of their own.
    const due = [...this.riding].map(([room, conns]) => [room, [...conns]] as const);
    setImmediate(() => {
      for (const [room, conns] of due) {
        const left = this.riding.get(room);
        if (left) for (const c of conns) left.delete(c);
        if (left?.size === 0) this.riding.delete(room);
        this.flushAll(conns.filter((c) => c.waitsForBatch()));
      }
    });
  };
  /** Sockets uWS reported drained, answered after the callback returns (see drainLater). */
  private drainedNow = new Set<SocketConnection>();
  /** Skip counts by shard for the room whose turn is being written (see skips). */
  private turnSkips: { room: string; by: Map<number, [number, number]> } | undefined;
  private readonly answerDrains = () => {
    const conns = this.drainedNow;
    this.drainedNow = new Set();
    for (const c of conns) c.onDrain();
  };

  constructor(private readonly o: GatewayOptions) {
    this.metrics = o.metrics;
    this.compressThreshold = o.compressThreshold;
    this.maxBackpressure = o.maxBackpressure;
    this.app = this.uws.App();
    this.clientIp = createClientIp(o.trustProxy);
    this.perIp = o.connectRate > 0 ? new RateLimiter({ rate: o.connectRate, burst: o.connectBurst }) : undefined;
  }

  /** How much the members are talking, 0..1 (member-talk.ts): the fan-out and the tick yield to them. */
  get talking(): number {
    return this.talk.level();
  }

  route(r: Route): void {
    mount(this.app, r, {
      maxBodyBytes: this.o.maxHttpBodyBytes,
      onDone: (route, status) => this.metrics.httpRequests.inc({ route, status: String(status) }),
      onError: (err) => this.o.log.error({ err }, 'http handler failed'),
      stopped: () => this.shut,
    });
  }

  /** Registers /ws and the fallback 404, then listens. Resolves with the bound port. */
  async listen(handler: GatewayHandler): Promise<number> {
    this.handler = handler;
    this.app.ws<UserData>('/ws', {
      compression: this.uws.DISABLED,
      maxPayloadLength: this.o.maxFrameBytes,
      idleTimeout: this.o.idleTimeoutSec,
      maxBackpressure: this.o.maxBackpressure,
      closeOnBackpressureLimit: 0,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => this.upgrade(res, req, context),
      open: (ws) => {
        const d = ws.getUserData();
        const u = d.c as Upgraded;
        const conn = new SocketConnection(ws, this, u.creds, u.compress);
        const initial = u.initial;
        d.c = conn; // the connection holds what it needs; the user data only finds it
        this.sockets.add(conn);
        this.metrics.connects.inc();
        this.handler?.open(conn, u.sid, initial);
      },
      message: (ws, message, isBinary) => {
        const conn = connOf(ws);
        this.talk.frame();
        // uWS neuters the buffer after this callback; the engine decodes synchronously.
        if (conn) this.handler?.frame(conn, new Uint8Array(message), isBinary);
      },
      drain: (ws) => {
        const conn = connOf(ws);
        if (!conn) return;
        this.slow.seen(conn, Date.now()); // it has a backlog
        // Members that fell behind on room frames drain ~every write: only replies and waiters need the turn.
        if (conn.backlogged) this.drainLater(conn);
      },
      close: (ws, code) => {
        const conn = connOf(ws);
        if (!conn) return;
        this.metrics.disconnects.inc({ code: closeCodeLabel(code) });
        conn.markClosed();
        conn.leaveShards();
        conn.onDrain();
        this.sockets.delete(conn);
        this.slow.forget(conn);
        this.handler?.closed(conn);
      },
    });
    this.app.any('/*', (res, req) => {
      if (this.shut) return void res.close();
      if (Number.isNaN(contentLength(req))) return refuseFraming(res);
      res.writeStatus(statusLine(404)).writeHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ error: { code: 'NOT_FOUND', message: 'no such route' } }));
    });
    const wanted = this.o.port === 0 ? await freePort(this.o.host) : this.o.port;
    const port = await new Promise<number>((resolve, reject) => {
      this.app.listen(this.o.host, wanted, (ls) => {
        if (!ls) return reject(new Error(`cannot listen on ${this.o.host}:${wanted}`));
        this.listenSocket = ls;
        resolve(this.uws.us_socket_local_port(ls as never));
      });
    });
    return port;
  }

  /** Something was written: the sweep after it finds the sockets it left with a backlog. */
  private wrote(): void {
    this.slow.noteWrite();
    this.sweepSoon();
  }

  /**
   * The sweep (slow sockets, per-IP connect buckets) runs SLOW_SWEEP_MS after activity and
   * goes on only while it has something to watch: an idle worker has no timer for it.
   */
  private sweepSoon(): void {
    if (this.sweepTimer || !this.listenSocket) return;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      this.slow.sweep(this.sockets, Date.now());
      this.perIp?.sweep();
      if (this.slow.busy || (this.perIp?.size ?? 0) > 0) this.sweepSoon();
    }, SLOW_SWEEP_MS);
    this.sweepTimer.unref();
  }

  /** Token checked synchronously: the socket is upgraded (or refused) before the handler returns. */
  private upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
    if (this.shut) return void res.close();
    const ip = this.clientIp(Buffer.from(res.getRemoteAddressAsText()).toString(), {
      'x-forwarded-for': req.getHeader('x-forwarded-for'),
      forwarded: req.getHeader('forwarded'),
    });
    const refuse = (status: number, code: string, message: string, headers: Record<string, string> = {}) => {
      this.o.log.debug({ ip, status, code }, 'upgrade refused');
      res.writeStatus(statusLine(status)).writeHeader('Content-Type', 'application/json');
      for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
      res.end(JSON.stringify({ error: { code, message } }), true);
    };
    const wait = this.perIp?.take(ip) ?? 0;
    if (this.perIp) this.sweepSoon(); // its bucket is swept once full again
    if (wait > 0) {
      this.metrics.authFailures.inc({ reason: 'rate_limited' });
      return refuse(429, 'RATE_LIMITED', 'too many connections from this address', { 'Retry-After': String(Math.ceil(wait / 1000)) });
    }
    const q = new URLSearchParams(req.getQuery() ?? '');
    const sid = randomBytes(9).toString('base64url');
    const offered = offeredProtocols(req.getHeader('sec-websocket-protocol'));
    const token = offered.token ?? q.get('token');
    let creds: Credentials;
    if (!token) {
      if (!this.o.allowGuests) {
        this.metrics.authFailures.inc({ reason: 'missing' });
        return refuse(401, 'UNAUTHORIZED', 'token required');
      }
      creds = guestCredentials(sid, this.o.guestRooms);
    } else {
      try {
        creds = this.o.verifier.verify(token);
      } catch (err) {
        const reason = err instanceof AuthError ? err.reason : 'malformed';
        this.metrics.authFailures.inc({ reason });
        return refuse(401, 'UNAUTHORIZED', err instanceof AuthError ? err.message : 'token rejected');
      }
      const refusal = this.handler?.admit?.(creds.uid);
      if (refusal) {
        this.metrics.authFailures.inc({ reason: refusal.code === 'BANNED' ? 'banned' : 'user_conns' });
        return refuse(refusal.status, refusal.code, refusal.message);
      }
    }
    const room = q.get('room');
    const initial: InitialJoin | undefined =
      room === null ? undefined : { room, since: q.get('since') ?? undefined, epoch: q.get('epoch') ?? undefined, last: q.get('last') ?? undefined };
    res.upgrade<UserData>(
      { c: { sid, creds, compress: q.get('compress') === 'deflate', initial } },
      req.getHeader('sec-websocket-key'),
      offered.answer,
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  }

  /** A socket has replies to write at the end of this turn. */
  hold(c: SocketConnection): void {
    if (this.holding.push(c) === 1) queueMicrotask(this.flushHeld);
  }

  /** A socket has replies to write with `room`'s next fan-out; none within rideMs writes them anyway. */
  ride(c: SocketConnection, room: string): void {
    // A Set: a socket flushed another way may ride again before the room's next publish.
    const conns = this.riding.get(room);
    if (conns) conns.add(c);
    else this.riding.set(room, new Set([c]));
    if (this.rideTimer) return;
    this.rideTimer = setTimeout(this.flushRiders, this.o.rideMs());
    this.rideTimer.unref(); // a closing socket flushes its replies itself
  }

  /**
   * Takes `room`'s riders that still hold replies and get its frames. One that holds replies
   * but no longer gets them (it left the room, or is replaying it again) writes them now.
   */
  takeRiders(room: string): SocketConnection[] | undefined {
    const conns = this.riding.get(room);
    if (!conns) return undefined;
    this.riding.delete(room);
    if (this.riding.size === 0 && this.rideTimer) {
      // A timer left from riders gone would cut the wait of the next tick's riders short.
      clearTimeout(this.rideTimer);
      this.rideTimer = undefined;
    }
    let found: SocketConnection[] | undefined;
    for (const c of conns) {
      if (c.ridesWith(room)) (found ??= []).push(c);
      else if (c.waitsForBatch()) this.flushAll([c]);
    }
    return found;
  }

  /** Writes the sockets' held replies. */
  private flushAll(conns: readonly SocketConnection[]): void {
    let frames = 0;
    let writes = 0;
    for (const c of conns) {
      const n = c.flush();
      frames += n;
      if (n > 0) writes++;
    }
    this.metrics.replyFrames.inc(frames);
    this.metrics.replyWrites.inc(writes);
    if (writes > 0) this.wrote();
  }

  // ---- RoomPublisher ----

  /** Queued behind the room's frames in hand, and written one shard per loop turn (room-fanout.ts). */
  publish(room: string, plain: Uint8Array, done?: (d: Delivered) => void): void {
    const f = this.fanouts.get(room);
    if (f) f.publish({ plain, done });
    else done?.({ receivers: 0, bytes: 0 });
  }

  fanoutFor(room: string): RoomFanout<SocketConnection> {
    let f = this.fanouts.get(room);
    if (!f) this.fanouts.set(room, (f = new RoomFanout(room, this, this.o.fanoutShardMembers || Infinity, this.sliceMs)));
    return f;
  }

  /** A subscriber left its shard (-1: it was still waiting for one). */
  leftShard(room: string, shard: number): void {
    this.fanouts.get(room)?.left(shard);
  }

  // ---- ShardHost ----

  publishShard(room: string, shard: number, frame: FanoutFrame, riders: readonly SocketConnection[] | undefined): Delivered {
    const { plain } = frame;
    const p = topic(room, false, shard);
    const c = topic(room, true, shard);
    const np = this.app.numSubscribers(p);
    const nc = this.app.numSubscribers(c);
    if (np + nc === 0) return { receivers: 0, bytes: 0 };
    const [dp, dc] = this.skips(room, shard);
    this.wrote();
    // Sockets holding acks get this frame with them in one write, kept out of the publish; one
    // that left the room since the pass began writes them now.
    let riding: SocketConnection[] | undefined;
    for (const r of riders ?? []) {
      if (r.ridesWith(room)) (riding ??= []).push(r);
      else if (r.waitsForBatch()) this.flushAll([r]);
    }
    if (riding) for (const r of riding) r.standAside(room, shard);
    const z = frameBytes(frame, nc > 0 || riding?.some((r) => r.compress) === true, this.compressThreshold);
    if (np > 0) this.app.publish(p, plain, true);
    if (nc > 0) this.app.publish(c, z, true);
    if (riding) {
      let frames = 0;
      for (const r of riding) {
        frames += r.flushWith(r.compress ? z : plain);
        r.rejoin(room, shard);
      }
      this.metrics.replyFrames.inc(frames); // no writes of their own: they went with the batch
    }
    // What was written: uWS skipped the sockets counted in `skips`.
    return { receivers: np - dp + nc - dc, bytes: (np - dp) * plain.byteLength + (nc - dc) * z.byteLength };
  }

  idle(room: string): void {
    this.fanouts.delete(room);
  }

  failed(room: string, err: unknown): void {
    this.o.log.error({ err, room }, 'fan-out of a frame failed; its members recover the gap with since');
  }

  /**
   * uWS publish skips a socket whose send buffer is over maxBackpressure and reports
   * nothing; the same test, made just before the publish, counts each skip (plain and
   * compressed subscribers apart). Only drop candidates are tested, so the cost follows the
   * slow sockets, not the members: a socket over the limit has a backlog, which the sweep
   * (every second after a write) or its drain events notice, and it stays watched a while (slow-watch.ts).
   * Missed: skips of a socket never seen slow before, within the second its first backlog
   * builds up without a drain.
   *
   * Counted for all of the room's shards when its turn starts (turnStarted), in one look per
   * candidate: a socket's buffer changes only through its own writes and the loop's, so the
   * counts stay exact for that turn's shards. Counted per shard, each
   * shard looked at every candidate: at the top rates nearly every member is one, and a pass
   * over 5k members in 10 shards made 50k looks (bench/notes/big-room.md, session 20).
   */
  private skips(room: string, shard: number): readonly [number, number] {
    const n = this.turnSkips?.room === room ? this.turnSkips.by.get(shard) : undefined;
    if (n === undefined) return NO_SKIPS;
    this.metrics.backpressureDrops.inc(n[0] + n[1]);
    return n;
  }

  turnStarted(room: string): void {
    this.turnSkips = { room, by: this.countSkips(room) };
  }

  private countSkips(room: string): Map<number, [number, number]> {
    const by = new Map<number, [number, number]>();
    for (const s of this.slow.candidates()) {
      if (s.closed) continue;
      const shard = s.shardIn(room);
      if (shard === undefined || shard < 0 || s.bufferedAmount() <= this.o.maxBackpressure) continue;
      let n = by.get(shard);
      if (n === undefined) by.set(shard, (n = [0, 0]));
      n[s.compress ? 1 : 0]++;
    }
    return by;
  }

  get connectionCount(): number {
    return this.sockets.size;
  }

  /** Stops accepting connections (existing sockets stay open). */
  stopListening(): void {
    if (this.listenSocket) this.uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
    clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /**
   * Writes after a drain run on the next turn, never inside uWS's drain callback (nor its
   * microtasks): in this uSockets a large send that finds the buffer empty (`us_socket_write2`)
   * does not mark its partial write failed, so when made inside the socket's writable event
   * uSockets stops polling for writable after the callback and the rest of the frame is never
   * written (a replay stalled for good; test/ws-recovery.test.ts, slow link).
   */
  private drainLater(conn: SocketConnection): void {
    if (this.drainedNow.size === 0) setImmediate(this.answerDrains);
    this.drainedNow.add(conn);
  }

  /** Closes every socket at once (after drain). */
  closeAll(): void {
    this.shut = true;
    for (const s of [...this.sockets]) s.close(1001, 'shutting down');
  }
}

/**
 * The subprotocols a client offered: a `roomcast.token.<jwt>` entry carries the token (never
 * echoed back); the answer is `roomcast` when offered, else the first other entry, else none.
 */
function offeredProtocols(header: string): { token?: string; answer: string } {
  const entries = header.split(',').map((p) => p.trim()).filter(Boolean);
  const tokenEntry = entries.find((p) => p.startsWith(WS_TOKEN_PROTOCOL_PREFIX));
  const others = entries.filter((p) => !p.startsWith(WS_TOKEN_PROTOCOL_PREFIX));
  const token = tokenEntry?.slice(WS_TOKEN_PROTOCOL_PREFIX.length);
  return { token: token || undefined, answer: others.includes(WS_PROTOCOL) ? WS_PROTOCOL : (others[0] ?? '') };
}
