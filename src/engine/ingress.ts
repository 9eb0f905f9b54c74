// The ingress path, top to bottom: frame → frame budget → shed (peeked, unread) → one decode →
// validate → the op's handler; chat and likes go through the send policy (guests, membership,
// mutes, per-user rates, bus up, blocklist) into the room's outbox. Bad input becomes an
// `error` reply, never a throw. Joins, refreshes and moderator ops are handed to their parts.
import type { Logger } from 'pino';
import type { Bus } from '../bus/bus.js';
import type { Config } from '../config/schema.js';
import { kindLabel, type Metrics, type MessageResult } from '../metrics/metrics.js';
import { createIngressDecoder, type IngressDecoder } from '../protocol/codec.js';
import { CLOSE, WireError } from '../protocol/errors.js';
import { MAX_LAST, ROOM_RE, type ClientOp, type Msg } from '../protocol/ops.js';
import { peekSend, type SendPeek } from '../protocol/peek.js';
import { peekRef, peekSendKind, validateClientOp, type ValidateLimits } from '../protocol/validate.js';
import type { LoopLag } from '../metrics/event-loop.js';
import type { Connection, InitialJoin } from '../rooms/connection.js';
import type { Moderation } from '../rooms/moderation.js';
import type { Outboxes, Outcome } from '../tick/outbox.js';
import { RateLimiter } from '../util/token-bucket.js';
import type { ControlActions } from './control.js';
import type { Joins } from './joins.js';
import type { Sessions } from './sessions.js';
import type { UserPresence } from './users.js';

export interface IngressOptions {
  config: Pick<
    Config,
    'maxFrameBytes' | 'maxBodyBytes' | 'frameRate' | 'frameBurst' | 'chatRate' | 'chatBurst' | 'likeRate' | 'likeBurst' | 'shedLagMs' | 'badFrameLimit'
  >;
  metrics: Metrics;
  log: Logger;
  /** The loop's lag, read per frame to decide on shedding. */
  lag: Pick<LoopLag, 'ms'>;
  outboxes: Pick<Outboxes, 'addNormal' | 'addLike'>;
  bus: Pick<Bus, 'available'>;
  moderation: Pick<Moderation, 'mutedFor'>;
  users: Pick<UserPresence, 'share'>;
  sessions: Pick<Sessions, 'isOpen' | 'refresh'>;
  joins: Pick<Joins, 'join' | 'leave'>;
  controls: Pick<ControlActions, 'moderate'>;
  /** Chat that fails review before it is queued (blocklist); the webhook runs per tick. */
  prefilter?: (room: string, body: string) => boolean;
  now: () => number;
}

/** Bad frames are counted per clock minute (fixed windows: the window number stays a small integer). */
const BAD_FRAME_WINDOW_MS = 60_000;
/** retryMs of a shed message: long enough for a lagging loop to catch up. */
const SHED_RETRY_MS = 1000;
/** Ops an expired connection may still send while it waits for its 4010. */
const WHILE_EXPIRED = new Set<ClientOp['op']>(['refresh', 'ping', 'leave']);

export class Ingress {
  private readonly decoder: IngressDecoder;
  private readonly validateLimits: ValidateLimits;
  private readonly limits: { chat: RateLimiter; like: RateLimiter };
  /** Inbound frames per connection: every op counts, pings and refused ones too. */
  private readonly frameBudget: RateLimiter<Connection>;

  constructor(private readonly o: IngressOptions) {
    const c = o.config;
    this.decoder = createIngressDecoder(c.maxFrameBytes);
    this.validateLimits = { maxBodyBytes: c.maxBodyBytes };
    this.limits = {
      chat: new RateLimiter({ rate: c.chatRate, burst: c.chatBurst }, o.now),
      like: new RateLimiter({ rate: c.likeRate, burst: c.likeBurst }, o.now),
    };
    this.frameBudget = new RateLimiter({ rate: c.frameRate, burst: c.frameBurst }, o.now);
    for (const code of ['BAD_FRAME', 'UNKNOWN_OP', 'RATE_LIMITED']) o.metrics.badFrames.inc({ code }, 0);
  }

  /** One inbound WebSocket message. Never throws: bad input becomes an `error` frame. */
  frame(c: Connection, data: Uint8Array, isBinary: boolean): void {
    const wait = this.frameBudget.take(c);
    if (wait > 0) return this.badFrame(c, new WireError('RATE_LIMITED', 'too many frames on this connection', wait));
    if (!isBinary) return this.badFrame(c, new WireError('BAD_FRAME', 'frames must be binary'));
    const shedLagMs = this.o.config.shedLagMs;
    const lagMs = this.o.lag.ms; // reading it marks traffic too
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
    this.o.metrics.shed.inc({ kind: s.kind }, s.count);
    this.o.metrics.messagesReceived.inc({ kind: s.kind, result: 'rate_limited' }, s.count);
    if (s.ref !== undefined) this.replyError(c, new WireError('RATE_LIMITED', 'the server is overloaded', SHED_RETRY_MS), s.ref);
  }

  private async handle(c: Connection, op: ClientOp): Promise<void> {
    try {
      if (c.creds.exp * 1000 <= this.o.now() && !WHILE_EXPIRED.has(op.op)) {
        if (op.op === 'send') this.o.metrics.messagesReceived.inc({ kind: op.kind, result: 'forbidden' });
        throw new WireError('BAD_TOKEN', 'token expired; send refresh with a fresh token');
      }
      switch (op.op) {
        case 'join':
          return await this.o.joins.join(c, op);
        case 'leave':
          return this.o.joins.leave(c, op);
        case 'send':
          return this.send(c, op);
        case 'kick':
        case 'mute':
          return await this.o.controls.moderate(c, op);
        case 'ping':
          return c.send({ op: 'pong', ref: op.ref, ts: this.o.now() });
        case 'refresh':
          return this.o.sessions.refresh(c, op);
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
    // A like frame may carry several likes (`count`): each is counted and rate-limited.
    const n = op.kind === 'like' ? (op.count ?? 1) : 1;
    const refuse = (e: WireError, result: MessageResult) => {
      this.o.metrics.messagesReceived.inc({ kind, result }, n);
      this.o.metrics.roomStats.count(op.room, 'refused', n);
      throw e;
    };
    if (c.creds.role === 'guest') refuse(new WireError('FORBIDDEN', 'guests are read-only'), 'forbidden');
    if (!c.rooms.has(op.room)) refuse(new WireError('NOT_JOINED'), 'invalid');
    const muted = this.o.moderation.mutedFor(op.room, c.creds.uid, c.creds.role === 'moderator');
    if (muted > 0) refuse(new WireError('MUTED', 'muted in this room', muted), 'muted');
    const wait = this.limits[kind].take(c.creds.uid, this.o.users.share(c.creds.uid), n);
    if (wait === Infinity) refuse(new WireError('RATE_LIMITED', 'more likes in one frame than the like burst allows'), 'rate_limited');
    if (wait > 0) refuse(new WireError('RATE_LIMITED', `too many ${kind} messages`, wait), 'rate_limited');
    if (!this.o.bus.available()) refuse(new WireError('UNAVAILABLE'), 'unavailable');
    // A like without `ref` asks for no outcome (docs/protocol.md §8): no ack, no reply owed.
    if (op.kind === 'like' && op.ref === undefined) return this.o.outboxes.addLike(op.room, n);
    const reply = (o: Outcome) => {
      if (!this.o.sessions.isOpen(c)) return;
      if ('error' in o) return this.replyError(c, o.error, op.ref);
      c.sendWithBatch(o.shown ? { op: 'ack', ref: op.ref, shown: true, seq: o.seq } : { op: 'ack', ref: op.ref, shown: false }, op.room);
    };
    if (op.kind === 'like') return this.o.outboxes.addLike(op.room, n, reply);
    if (this.o.prefilter && !this.o.prefilter(op.room, op.body)) refuse(new WireError('REJECTED'), 'rejected');
    const msg: Msg = { u: c.creds.uid, k: 'chat', b: op.body, t: this.o.now() };
    if (c.creds.name !== undefined) msg.n = c.creds.name;
    this.o.outboxes.addNormal(op.room, { msg, reply, review: true });
  }

  // ---- error replies ----

  private badFrame(c: Connection, e: WireError, ref?: number): void {
    this.o.metrics.badFrames.inc({ code: e.code });
    if (!c.open) return;
    const w = Math.floor(this.o.now() / BAD_FRAME_WINDOW_MS);
    if (w !== c.badWindow) {
      c.badWindow = w;
      c.badFrames = 0;
    }
    this.replyError(c, e, ref);
    if (++c.badFrames > this.o.config.badFrameLimit) c.close(CLOSE.BAD_FRAMES, 'too many bad frames');
  }

  private countSend(kind: string | undefined, result: MessageResult): void {
    if (kind !== undefined) this.o.metrics.messagesReceived.inc({ kind: kindLabel(kind), result });
  }

  private replyError(c: Connection, e: WireError, ref?: number): void {
    if (!this.o.sessions.isOpen(c)) return;
    c.send({ op: 'error', code: e.code, message: e.message, ref, retryMs: e.retryMs });
  }

  // ---- the upgrade's join, and upkeep ----

  /** The join requested in the upgrade's query, validated as a `join` frame would be. */
  initialJoin(c: Connection, initial: InitialJoin): void {
    if (!ROOM_RE.test(initial.room)) return this.replyError(c, new WireError('BAD_ROOM'));
    const since = uintParam(initial.since);
    if (Number.isNaN(since)) return this.replyError(c, new WireError('BAD_FRAME', 'since must be an unsigned integer'));
    const last = uintParam(initial.last);
    if (Number.isNaN(last) || (last ?? 0) > MAX_LAST) return this.replyError(c, new WireError('BAD_FRAME', `last must be an integer 0-${MAX_LAST}`));
    void this.handle(c, { op: 'join', room: initial.room, since, epoch: initial.epoch, last });
  }

  /** Forgets idle chat, like and frame buckets. */
  sweep(): void {
    Object.values(this.limits).forEach((l) => l.sweep());
    this.frameBudget.sweep();
  }
}

/** An unsigned integer query parameter: undefined when absent, NaN when malformed. */
function uintParam(v: string | undefined): number | undefined {
  return v === undefined ? undefined : /^\d{1,15}$/.test(v) ? Number(v) : NaN;
}
