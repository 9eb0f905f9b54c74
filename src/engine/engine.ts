// The worker's engine, independent of the socket library: the ingress path (frame → shed →
// decode → validate → policy → outbox) top to bottom in this file, plus drain. It composes
// the parts named for what they own: sessions from open to close and token refreshes
// (sessions.ts), the join and leave ops (joins.ts), joins and replays (rooms.ts), moderation
// (control.ts), API actions (api-actions.ts), member counts (member-counts.ts). The gateway
// feeds it frames; the API calls its actions.
import type { Logger } from 'pino';
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
import type { TokenVerifier } from '../auth/tokens.js';
import { TokenExpiry } from './token-expiry.js';
import { Sessions, type Refusal } from './sessions.js';
import { Joins } from './joins.js';
import { localUsers, type UserPresence } from './users.js';
import { Outboxes, type Outcome } from '../tick/outbox.js';
import { TickPipeline, type Reviewer } from '../tick/pipeline.js';
import { RateLimiter } from '../util/token-bucket.js';
import { Ticker } from '../tick/ticker.js';
import { Rooms } from './rooms.js';
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
  private readonly limits: { chat: RateLimiter; like: RateLimiter };
  /** Inbound frames per connection (by sid): every op counts, pings and refused ones too. */
  private readonly frameBudget: RateLimiter;
  private readonly sessions: Sessions;
  private readonly joins: Joins;
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
    this.sessions = new Sessions({
      membership: this.membership,
      rooms: this.rooms,
      moderation: this.moderation,
      users: this.users,
      expiry: this.expiry,
      verifier: o.verifier,
      metrics: o.metrics,
      config: c,
      nodeId: o.nodeId,
      now: this.now,
    });
    this.joins = new Joins({
      rooms: this.rooms,
      membership: this.membership,
      moderation: this.moderation,
      sessions: this.sessions,
      users: this.users,
      metrics: o.metrics,
      config: c,
      now: this.now,
    });
    this.counts = new MemberCounts({ presence: o.bus, membership: this.membership, publisher: o.publisher, metrics: o.metrics, config: c, now: this.now });
    this.controls = new ControlActions({
      bus: o.bus,
      moderation: this.moderation,
      membership: this.membership,
      publisher: o.publisher,
      metrics: o.metrics,
      config: c,
      now: this.now,
      leave: (conn, room) => this.rooms.leave(conn, room),
      cancelJoin: (conn, room, err) => this.joins.cancel(conn, room, err),
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
      this.joins.sweep();
      this.pipeline.rates.sweep();
      this.controls.sweep();
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
    this.sessions.open(c);
    if (!initial) return;
    if (!ROOM_RE.test(initial.room)) return this.replyError(c, new WireError('BAD_ROOM'));
    const since = uintParam(initial.since);
    if (Number.isNaN(since)) return this.replyError(c, new WireError('BAD_FRAME', 'since must be an unsigned integer'));
    const last = uintParam(initial.last);
    if (Number.isNaN(last) || (last ?? 0) > MAX_LAST) return this.replyError(c, new WireError('BAD_FRAME', `last must be an integer 0-${MAX_LAST}`));
    void this.handle(c, { op: 'join', room: initial.room, since, epoch: initial.epoch, last });
  }

  closed(c: Connection): void {
    this.sessions.closed(c);
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
    const st = this.sessions.stateOf(c);
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
    if (!this.sessions.isOpen(c)) return;
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
          return await this.joins.join(c, op);
        case 'leave':
          return this.joins.leave(c, op);
        case 'send':
          return this.send(c, op);
        case 'kick':
        case 'mute':
          return await this.controls.moderate(c, op);
        case 'ping':
          return c.send({ op: 'pong', ref: op.ref, ts: this.now() });
        case 'refresh':
          return this.sessions.refresh(c, op);
      }
    } catch (err) {
      if (op.op === 'join') this.o.metrics.joins.inc({ result: 'refused' });
      if (err instanceof WireError) return this.replyError(c, err, op.ref);
      this.o.log.error({ err, op: op.op }, 'op failed');
      this.replyError(c, new WireError('UNAVAILABLE', 'internal error'), op.ref);
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
      if (!this.sessions.isOpen(c)) return;
      if ('error' in o) return this.replyError(c, o.error, op.ref);
      c.send(o.shown ? { op: 'ack', ref: op.ref, shown: true, seq: o.seq } : { op: 'ack', ref: op.ref, shown: false });
    };
    if (op.kind === 'like') return this.outboxes.addLike(op.room, reply);
    if (this.o.prefilter && !this.o.prefilter(op.room, op.body)) refuse(new WireError('REJECTED'), 'rejected');
    const msg: Msg = { u: c.creds.uid, k: 'chat', b: op.body, t: this.now() };
    if (c.creds.name !== undefined) msg.n = c.creds.name;
    this.outboxes.addNormal(op.room, { msg, reply, review: true });
  }

  /** Refuses an upgrade before a socket exists: a banned user, or one over its connection cap. */
  admit(uid: string): Refusal | undefined {
    return this.sessions.admit(uid);
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
    this.sessions.bye(reason);
    await this.ticker.stop();
    await this.pipeline.flush();
    this.sessions.closeAll(reason);
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
