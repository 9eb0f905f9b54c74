// The worker's engine, independent of the socket library: the ingress path (frame → shed →
// decode → validate → policy → outbox) and the client ops, top to bottom in this file, plus
// connection lifecycle, token expiry and drain. It composes the parts named for what they
// own: moderation actions (control.ts), API actions (api-actions.ts), member counts
// (member-counts.ts), joins and replays (rooms.ts). The gateway feeds it frames; the API
// calls its actions.
import type { Logger } from 'pino';
import { randomInt } from 'node:crypto';
import type { Bus } from '../bus/bus.js';
import type { Config } from '../config/schema.js';
import { kindLabel, type Metrics, type MessageResult } from '../metrics/metrics.js';
import { CLOSE, WireError } from '../protocol/errors.js';
import { createIngressDecoder, type IngressDecoder } from '../protocol/codec.js';
import { MAX_LAST, ROOM_RE, type ClientOp, type Msg } from '../protocol/ops.js';
import { peekRef, peekSendKind, validateClientOp, type ValidateLimits } from '../protocol/validate.js';
import { peekSend, type SendPeek } from '../protocol/peek.js';
import { LoopLag } from '../metrics/event-loop.js';
import type { Connection, InitialJoin, RoomPublisher } from '../rooms/connection.js';
import { Membership } from '../rooms/membership.js';
import { Moderation } from '../rooms/moderation.js';
import { AuthError, mayJoin, type TokenVerifier } from '../auth/tokens.js';
import { TokenExpiry } from './token-expiry.js';
import { localUsers, type UserPresence } from './users.js';
import { Outboxes, type Outcome } from '../tick/outbox.js';
import { TickPipeline, type Reviewer } from '../tick/pipeline.js';
import { RateLimiter } from '../util/token-bucket.js';
import { Ticker } from '../tick/ticker.js';
import { Rooms, type JoinGuard } from './rooms.js';
import { MemberCounts } from './member-counts.js';
import { ControlActions } from './control.js';
import { ApiActions } from './api-actions.js';
import type { ApiMessage } from '../api/routes.js';
import type { RoomEvents } from '../events/room-events.js';

export interface EngineOptions {
  config: Config;
  bus: Bus;
  publisher: RoomPublisher;
  metrics: Metrics;
  log: Logger;
  nodeId: string;
  /** Chat that fails review before it is queued (blocklist); the webhook runs per tick. */
  prefilter?: (room: string, body: string) => boolean;
  review?: Reviewer;
  /** Business events (appends, member churn, room lifecycle); absent = none. */
  events?: RoomEvents;
  /** Verifies the tokens of `refresh` ops. */
  verifier: TokenVerifier;
  /** Node-wide socket counts per user (per-user limits and the connection cap); default: this worker's. */
  users?: UserPresence;
  now?: () => number;
}

/** Why an upgrade is refused before a socket exists. */
export interface Refusal {
  status: number;
  code: string;
  message: string;
}

/** Per-connection engine state: a fixed shape, and the joins map only while a join runs. */
class ConnState {
  badFrames = 0;
  open = true;
  /** Joins in progress by room: pending (no `joined` yet) or replaying. One per room. */
  joins: Map<string, JoinTicket> | undefined;
  constructor(public badSince: number) {}
}

interface JoinTicket {
  pending: boolean;
  /** Set by a kick, or by a newer join of the room replacing this one's replay. */
  cancelled?: WireError;
}

const BAD_FRAME_WINDOW_MS = 60_000;
/** retryMs of a shed message: long enough for a lagging loop to catch up. */
const SHED_RETRY_MS = 1000;
/** Ops an expired connection may still send while it waits for its 4010. */
const WHILE_EXPIRED = new Set<ClientOp['op']>(['refresh', 'ping', 'leave']);

export class Engine {
  readonly membership: Membership;
  readonly moderation: Moderation;
  private readonly outboxes = new Outboxes((urgent) => this.wake(urgent));
  private readonly pipeline: TickPipeline;
  private readonly rooms: Rooms;
  private readonly ticker: Ticker;
  private readonly decoder: IngressDecoder;
  private readonly validateLimits: ValidateLimits;
  private readonly limits: { chat: RateLimiter; like: RateLimiter; join: RateLimiter; mod: RateLimiter };
  /** Inbound frames per connection (by sid): every op counts, pings and refused ones too. */
  private readonly frameBudget: RateLimiter;
  private readonly state = new WeakMap<Connection, ConnState>();
  private readonly counts: MemberCounts;
  private readonly controls: ControlActions;
  private readonly api: ApiActions;
  private readonly now: () => number;
  private readonly expiry: TokenExpiry;
  private readonly users: UserPresence;
  private timers: NodeJS.Timeout[] = [];
  private draining = false;
  private readonly lag: LoopLag;

  constructor(private readonly o: EngineOptions) {
    const c = o.config;
    this.now = o.now ?? Date.now;
    this.lag = new LoopLag(o.metrics.loopDelay);
    this.membership = new Membership(o.events);
    this.moderation = new Moderation(this.now, c.maxModerationEntries);
    this.expiry = new TokenExpiry({ graceSec: c.tokenGraceSec, metrics: o.metrics, now: this.now });
    this.users = o.users ?? localUsers(this.membership);
    this.decoder = createIngressDecoder(c.maxFrameBytes);
    this.validateLimits = { maxBodyBytes: c.maxBodyBytes };
    this.limits = {
      chat: new RateLimiter({ rate: c.chatRate, burst: c.chatBurst }, this.now),
      like: new RateLimiter({ rate: c.likeRate, burst: c.likeBurst }, this.now),
      join: new RateLimiter({ rate: c.joinRate, burst: c.joinBurst }, this.now),
      mod: new RateLimiter({ rate: c.modRate, burst: c.modBurst }, this.now),
    };
    this.frameBudget = new RateLimiter({ rate: c.frameRate, burst: c.frameBurst }, this.now);
    this.pipeline = new TickPipeline({
      bus: o.bus,
      outboxes: this.outboxes,
      publisher: o.publisher,
      metrics: o.metrics,
      roomChatBudget: c.roomChatBudget,
      compressThreshold: c.compressThreshold,
      budgetShare: (room) => this.counts.budgetShare(room),
      review: o.review,
      events: o.events,
      onError: (err) => o.log.error({ err }, 'batch not delivered'),
      now: this.now,
    });
    this.rooms = new Rooms({
      bus: o.bus,
      membership: this.membership,
      pipeline: this.pipeline,
      maxReplay: c.history,
      replayBufferBytes: Math.floor(c.maxBackpressure / 4),
      replayStallMs: c.idleTimeoutSec * 1000,
      compressThreshold: c.compressThreshold,
    });
    this.counts = new MemberCounts({ presence: o.bus, membership: this.membership, publisher: o.publisher, metrics: o.metrics, config: c, now: this.now });
    this.controls = new ControlActions({
      bus: o.bus,
      moderation: this.moderation,
      membership: this.membership,
      publisher: o.publisher,
      metrics: o.metrics,
      kickSeconds: c.kickSeconds,
      now: this.now,
      leave: (conn, room) => this.rooms.leave(conn, room),
      cancelJoin: (conn, room, err) => {
        const pending = this.state.get(conn)?.joins?.get(room);
        if (pending) pending.cancelled = err;
      },
    });
    this.api = new ApiActions({ bus: o.bus, outboxes: this.outboxes, pipeline: this.pipeline, membership: this.membership, counts: this.counts, now: this.now });
    this.controls.count();
    for (const code of ['BAD_FRAME', 'UNKNOWN_OP', 'RATE_LIMITED']) o.metrics.badFrames.inc({ code }, 0);
    o.metrics.tickTarget.set(c.tickMs / 1000);
    this.ticker = new Ticker({
      tickMs: c.tickMs,
      maxTickMs: c.maxTickMs,
      // The ticker times the tick's own work: its append completes beside the next ticks.
      run: async () => this.pipeline.tick(),
      takeBusyMs: () => this.pipeline.takeFanoutMs(),
      onError: (err) => o.log.error({ err }, 'tick failed'),
      onTick: (workMs, effectiveMs) => {
        o.metrics.tickDuration.observe(workMs / 1000);
        o.metrics.effectiveTick.set(effectiveMs / 1000);
      },
    });
  }

  async start(): Promise<void> {
    await this.o.bus.start({
      onEntries: (room, epoch, entries) => {
        this.pipeline.onEntries(room, epoch, entries);
        this.wake();
      },
      onReadDone: () => this.pipeline.deliverRead(),
      onControl: (cmd) => this.controls.apply(cmd),
      onEpoch: (room, epoch) => this.pipeline.onEpoch(room, epoch),
      onAvailability: (up) => {
        this.o.metrics.busAvailable.set(up ? 1 : 0);
        if (up) this.o.log.info('bus reachable again');
        else this.o.log.error('bus unreachable: sends get UNAVAILABLE, /readyz is 503');
      },
    });
    this.o.metrics.busAvailable.set(this.o.bus.available() ? 1 : 0);
    this.o.events?.start();
    this.ticker.start();
    this.lag.start();
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.o.config.membersPushMs, () => this.counts.push());
    this.expiry.start();
    every(30_000, () => {
      Object.values(this.limits).forEach((l) => l.sweep());
      this.frameBudget.sweep();
      this.pipeline.rates.sweep();
      this.moderation.sweep();
      this.controls.count();
    });
  }

  /**
   * Traffic: something was queued or read from the bus. The ticker runs (its ticks while
   * entries flow keep the stretch measured, and reads are paced by it) and so does the
   * event-loop sampling; idle, both stop.
   */
  private wake(urgent = false): void {
    this.ticker.wake(urgent);
    this.lag.touch();
  }

  /** The current (possibly stretched) tick. */
  get effectiveTickMs(): number {
    return this.ticker.effectiveMs;
  }

  get ready(): boolean {
    return !this.draining && this.o.bus.available();
  }

  // ---- connections ----

  /** A new connection; `initial` is the join requested in the upgrade's query. */
  open(c: Connection, initial?: InitialJoin): void {
    this.state.set(c, new ConnState(this.now()));
    this.membership.addConnection(c);
    if (!c.creds.guest) this.users.opened(c.creds.uid);
    this.expiry.schedule(c);
    this.o.metrics.connections.inc();
    c.send({ op: 'welcome', sid: c.sid, uid: c.creds.uid, node: this.o.nodeId, hb: this.o.config.idleTimeoutSec });
    if (!initial) return;
    if (!ROOM_RE.test(initial.room)) return this.replyError(c, new WireError('BAD_ROOM'));
    const since = uintParam(initial.since);
    if (Number.isNaN(since)) return this.replyError(c, new WireError('BAD_FRAME', 'since must be an unsigned integer'));
    const last = uintParam(initial.last);
    if (Number.isNaN(last) || (last ?? 0) > MAX_LAST) return this.replyError(c, new WireError('BAD_FRAME', `last must be an integer 0-${MAX_LAST}`));
    void this.handle(c, { op: 'join', room: initial.room, since, epoch: initial.epoch, last });
  }

  closed(c: Connection): void {
    const st = this.state.get(c);
    if (!st?.open) return;
    st.open = false;
    this.expiry.forget(c);
    if (!c.creds.guest) this.users.closed(c.creds.uid);
    this.rooms.dropped(c);
    this.o.metrics.connections.dec();
    this.o.metrics.rooms.set(this.membership.roomCount);
  }

  /** One inbound WebSocket message. Never throws: bad input becomes an `error` frame. */
  frame(c: Connection, data: Uint8Array, isBinary: boolean): void {
    const wait = this.frameBudget.take(c.sid);
    if (wait > 0) return this.badFrame(c, new WireError('RATE_LIMITED', 'too many frames on this connection', wait));
    if (!isBinary) return this.badFrame(c, new WireError('BAD_FRAME', 'frames must be binary'));
    const shedLagMs = this.o.config.shedLagMs;
    const lagMs = this.lag.ms; // reading it marks traffic too
    if (shedLagMs > 0 && lagMs > shedLagMs) {
      const send = peekSend(data);
      if (send) return this.shed(c, send);
    }
    let decoded: unknown;
    try {
      decoded = this.decoder.decode(data);
    } catch {
      return this.badFrame(c, new WireError('BAD_FRAME', 'not one MessagePack value'));
    }
    let op: ClientOp;
    try {
      op = validateClientOp(decoded, data, this.validateLimits);
    } catch (err) {
      const e = err instanceof WireError ? err : new WireError('BAD_FRAME');
      const ref = peekRef(decoded);
      if (e.code === 'BAD_FRAME' || e.code === 'UNKNOWN_OP') return this.badFrame(c, e, ref);
      this.countSend(peekSendKind(decoded, data), e.code === 'TOO_LARGE' ? 'too_large' : e.code === 'FORBIDDEN' ? 'forbidden' : 'invalid');
      return this.replyError(c, e, ref);
    }
    void this.handle(c, op);
  }

  /**
   * The loop lags: a chat or like is refused unread, so the worker's time goes to what is
   * already queued, pings and the API. Only a sender that asked for a reply (`ref`) gets one.
   */
  private shed(c: Connection, s: SendPeek): void {
    this.o.metrics.shed.inc({ kind: s.kind });
    this.o.metrics.messagesReceived.inc({ kind: s.kind, result: 'rate_limited' });
    if (s.ref !== undefined) this.replyError(c, new WireError('RATE_LIMITED', 'the server is overloaded', SHED_RETRY_MS), s.ref);
  }

  private badFrame(c: Connection, e: WireError, ref?: number): void {
    this.o.metrics.badFrames.inc({ code: e.code });
    const st = this.state.get(c);
    if (!st) return;
    const t = this.now();
    if (t - st.badSince > BAD_FRAME_WINDOW_MS) {
      st.badSince = t;
      st.badFrames = 0;
    }
    this.replyError(c, e, ref);
    if (++st.badFrames > this.o.config.badFrameLimit) c.close(CLOSE.BAD_FRAMES, 'too many bad frames');
  }

  private countSend(kind: string | undefined, result: MessageResult): void {
    if (kind !== undefined) this.o.metrics.messagesReceived.inc({ kind: kindLabel(kind), result });
  }

  private replyError(c: Connection, e: WireError, ref?: number): void {
    if (!this.state.get(c)?.open) return;
    c.send({ op: 'error', code: e.code, message: e.message, ref, retryMs: e.retryMs });
  }

  private async handle(c: Connection, op: ClientOp): Promise<void> {
    try {
      if (c.creds.expMs <= this.now() && !WHILE_EXPIRED.has(op.op)) {
        if (op.op === 'send') this.o.metrics.messagesReceived.inc({ kind: op.kind, result: 'forbidden' });
        throw new WireError('BAD_TOKEN', 'token expired; send refresh with a fresh token');
      }
      switch (op.op) {
        case 'join':
          return await this.join(c, op);
        case 'leave':
          this.rooms.leave(c, op.room);
          this.o.metrics.rooms.set(this.membership.roomCount);
          return c.send({ op: 'left', ref: op.ref, room: op.room });
        case 'send':
          return this.send(c, op);
        case 'kick':
        case 'mute':
          return await this.moderate(c, op);
        case 'ping':
          return c.send({ op: 'pong', ref: op.ref, ts: this.now() });
        case 'refresh':
          return this.refresh(c, op);
      }
    } catch (err) {
      if (op.op === 'join') this.o.metrics.joins.inc({ result: 'refused' });
      if (err instanceof WireError) return this.replyError(c, err, op.ref);
      this.o.log.error({ err, op: op.op }, 'op failed');
      this.replyError(c, new WireError('UNAVAILABLE', 'internal error'), op.ref);
    }
  }

  private async join(c: Connection, op: Extract<ClientOp, { op: 'join' }>): Promise<void> {
    const { room } = op;
    const st = this.state.get(c);
    if (!st?.open) return;
    const joins = (st.joins ??= new Map());
    const prev = joins.get(room);
    if (prev?.pending) throw new WireError('RATE_LIMITED', 'a join of this room is already pending', 100);
    // Pending joins hold a room slot too, so waiting joins cannot exceed the room limit.
    const held = new Set(c.rooms);
    for (const [r, t] of joins) if (t.pending) held.add(r);
    this.mayEnter(c, room, held);
    const wait = this.limits.join.take(c.creds.uid, this.users.share(c.creds.uid));
    if (wait > 0) throw new WireError('RATE_LIMITED', 'too many joins', wait);
    // One join (and so one replay) per connection and room: a newer one replaces the replay.
    if (prev) prev.cancelled = new WireError('UNAVAILABLE', 'replaced by a newer join');
    const ticket: JoinTicket = { pending: true };
    joins.set(room, ticket);
    const guard: JoinGuard = {
      check: () => {
        if (!st.open) throw new WireError('UNAVAILABLE', 'connection closed');
        if (ticket.cancelled) throw ticket.cancelled;
        this.mayEnter(c, room, c.rooms);
      },
      joined: () => {
        ticket.pending = false;
      },
    };
    let recovered: boolean | undefined;
    try {
      recovered = await this.rooms.join(c, op, guard);
    } finally {
      if (joins.get(room) === ticket) joins.delete(room);
      if (joins.size === 0 && st.joins === joins) st.joins = undefined;
    }
    this.o.metrics.joins.inc({ result: recovered === undefined ? 'joined' : recovered ? 'recovered' : 'unrecovered' });
    this.o.metrics.rooms.set(this.membership.roomCount);
    const until = this.moderation.roomMutedUntil(room);
    if (until > 0) c.send({ op: 'muted', room, until, all: true });
  }

  /** Throws unless `c` may be in `room` now: its token allows it, no ban, a free room slot. */
  private mayEnter(c: Connection, room: string, held: ReadonlySet<string>): void {
    if (!mayJoin(c.creds, room)) throw new WireError('FORBIDDEN', 'token does not allow this room');
    const banned = this.moderation.bannedFor(room, c.creds.uid);
    if (banned > 0) throw new WireError('KICKED', 'kicked from this room', banned);
    if (!held.has(room) && held.size >= this.o.config.maxRoomsPerConn) {
      throw new WireError('TOO_MANY_ROOMS', `at most ${this.o.config.maxRoomsPerConn} rooms per connection`);
    }
  }

  private send(c: Connection, op: Extract<ClientOp, { op: 'send' }>): void {
    const kind = op.kind;
    const refuse = (e: WireError, result: MessageResult) => {
      this.o.metrics.messagesReceived.inc({ kind, result });
      this.o.metrics.roomStats.count(op.room, 'refused');
      throw e;
    };
    if (c.creds.guest) refuse(new WireError('FORBIDDEN', 'guests are read-only'), 'forbidden');
    if (!c.rooms.has(op.room)) refuse(new WireError('NOT_JOINED'), 'invalid');
    const muted = this.moderation.mutedFor(op.room, c.creds.uid, c.creds.role === 'moderator');
    if (muted > 0) refuse(new WireError('MUTED', 'muted in this room', muted), 'muted');
    const wait = this.limits[kind].take(c.creds.uid, this.users.share(c.creds.uid));
    if (wait > 0) refuse(new WireError('RATE_LIMITED', `too many ${kind} messages`, wait), 'rate_limited');
    if (!this.o.bus.available()) refuse(new WireError('UNAVAILABLE'), 'unavailable');
    // A like without `ref` asks for no outcome (docs/protocol.md §8): no ack, no reply owed.
    if (op.kind === 'like' && op.ref === undefined) return this.outboxes.addLike(op.room);
    const reply = (o: Outcome) => {
      if (!this.state.get(c)?.open) return;
      if ('error' in o) return this.replyError(c, o.error, op.ref);
      c.send(o.shown ? { op: 'ack', ref: op.ref, shown: true, seq: o.seq } : { op: 'ack', ref: op.ref, shown: false });
    };
    if (op.kind === 'like') return this.outboxes.addLike(op.room, reply);
    if (this.o.prefilter && !this.o.prefilter(op.room, op.body)) refuse(new WireError('REJECTED'), 'rejected');
    const msg: Msg = { u: c.creds.uid, k: 'chat', b: op.body, t: this.now() };
    if (c.creds.name !== undefined) msg.n = c.creds.name;
    this.outboxes.addNormal(op.room, { msg, reply, review: true });
  }

  // ---- token expiry and refresh (PROTOCOL §9) ----

  /**
   * A fresh token for the same user: its expiry, name, rooms and role apply from now on, and
   * rooms it no longer allows are left. A bad token or another user's changes nothing.
   */
  private refresh(c: Connection, op: Extract<ClientOp, { op: 'refresh' }>): void {
    const refused = (result: 'bad_token' | 'forbidden', e: WireError) => {
      this.o.metrics.tokenRefreshes.inc({ result });
      throw e;
    };
    let creds;
    try {
      creds = this.o.verifier.verify(op.token);
    } catch (err) {
      return refused('bad_token', new WireError('BAD_TOKEN', err instanceof AuthError ? err.message : undefined));
    }
    if (c.creds.guest || creds.uid !== c.creds.uid) refused('forbidden', new WireError('FORBIDDEN', 'the token is for another user'));
    c.creds = creds;
    for (const room of [...c.rooms]) {
      if (mayJoin(creds, room)) continue;
      this.rooms.leave(c, room);
      c.send({ op: 'left', room });
    }
    this.o.metrics.rooms.set(this.membership.roomCount);
    this.expiry.schedule(c);
    this.o.metrics.tokenRefreshes.inc({ result: 'ok' });
    c.send({ op: 'refreshed', ref: op.ref, exp: Math.floor(creds.expMs / 1000) });
  }

  /** Refuses an upgrade before a socket exists: a banned user, or one over its connection cap. */
  admit(uid: string): Refusal | undefined {
    const banned = this.moderation.userBannedFor(uid);
    if (banned > 0) return { status: 403, code: 'BANNED', message: `disconnected by the server; banned for ${Math.ceil(banned / 1000)} s` };
    const max = this.o.config.maxConnsPerUser;
    if (this.users.count(uid) >= max) return { status: 429, code: 'RATE_LIMITED', message: `at most ${max} connections per user` };
    return undefined;
  }

  private async moderate(c: Connection, op: Extract<ClientOp, { op: 'kick' | 'mute' }>): Promise<void> {
    if (c.creds.role !== 'moderator') throw new WireError('FORBIDDEN', 'moderators only');
    if (!c.rooms.has(op.room)) throw new WireError('NOT_JOINED');
    const wait = this.limits.mod.take(c.creds.uid);
    if (wait > 0) throw new WireError('RATE_LIMITED', 'too many moderator ops', wait);
    if (op.op === 'kick') await this.kick(op.room, op.uid, op.seconds, op.reason);
    else await this.mute(op.room, op.uid, op.seconds ?? this.o.config.muteSeconds);
    c.send({ op: 'ack', ref: op.ref, shown: true });
  }

  // ---- the parts' actions, as the API and node.ts call them ----

  kick(room: string, uid: string, seconds?: number, reason?: string): Promise<void> {
    return this.controls.kick(room, uid, seconds, reason);
  }

  disconnect(uid: string, seconds?: number, reason?: string): Promise<void> {
    return this.controls.disconnect(uid, seconds, reason);
  }

  mute(room: string, uid: string | undefined, seconds: number): Promise<number> {
    return this.controls.mute(room, uid, seconds);
  }

  post(room: string, m: ApiMessage): Promise<Outcome> {
    return this.api.post(room, m);
  }

  broadcast(m: ApiMessage): Promise<{ rooms: number; failed: number }> {
    return this.api.broadcast(m);
  }

  roomInfo(room: string): ReturnType<ApiActions['roomInfo']> {
    return this.api.roomInfo(room);
  }

  topRooms(n: number): Array<{ room: string; members: number }> {
    return this.counts.top(n);
  }

  membersOf(room: string): number {
    return this.counts.of(room);
  }

  // ---- shutdown ----

  /** Draining: `bye` with a jittered reconnect delay to everyone, flush the outboxes, close. */
  async drain(reason = 'draining'): Promise<void> {
    this.draining = true;
    for (const c of this.membership.all()) c.send({ op: 'bye', reason, reconnectMs: randomInt(0, this.o.config.drainMs + 1) });
    await this.ticker.stop();
    await this.pipeline.flush();
    for (const c of [...this.membership.all()]) c.close(CLOSE.GOING_AWAY, reason);
    for (const t of this.timers) clearInterval(t);
    this.expiry.stop();
    this.lag.stop();
    await this.o.events?.stop();
    await this.o.bus.close();
  }
}

/** An unsigned integer query parameter: undefined when absent, NaN when malformed. */
function uintParam(v: string | undefined): number | undefined {
  return v === undefined ? undefined : /^\d{1,15}$/.test(v) ? Number(v) : NaN;
}
