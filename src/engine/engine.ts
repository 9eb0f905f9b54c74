// The worker's engine, independent of the socket library: the composition root of the parts
// named for what they own. The ingress path reads top to bottom in ingress.ts; sessions from
// open to close and token refreshes are sessions.ts; the join and leave ops joins.ts, joins and
// replays rooms.ts; moderation control.ts; API actions api-actions.ts; member counts
// member-counts.ts. The engine wires them, starts and drains them, and is what the gateway
// (open, frame, closed, admit) and the API (RoomControl) call.
import type { Logger } from 'pino';
import type { ApiMessage } from '../api/message-body.js';
import type { TokenVerifier } from '../auth/tokens.js';
import type { Bus } from '../bus/bus.js';
import type { Config } from '../config/schema.js';
import type { RoomEvents } from '../events/room-events.js';
import { LoopLag, loopBusySince } from '../metrics/event-loop.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Connection, InitialJoin, RoomPublisher } from '../rooms/connection.js';
import { Membership } from '../rooms/membership.js';
import { Moderation } from '../rooms/moderation.js';
import { Outboxes, type Outcome } from '../tick/outbox.js';
import { TickPipeline, type Reviewer } from '../tick/pipeline.js';
import { Ticker } from '../tick/ticker.js';
import { ApiActions } from './api-actions.js';
import { ControlActions } from './control.js';
import { Ingress } from './ingress.js';
import { Joins } from './joins.js';
import { MemberCounts } from './member-counts.js';
import { Rooms } from './rooms.js';
import { Sessions, type Refusal } from './sessions.js';
import { TokenExpiry } from './token-expiry.js';
import { localUsers, type UserPresence, type UserPresenceFactory } from './users.js';

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
  users?: UserPresenceFactory;
  /** How much the members are talking, 0..1 (gateway/member-talk.ts): the tick stretches more while they do. */
  talking?: () => number;
  now?: () => number;
}

export class Engine {
  readonly membership: Membership;
  readonly moderation: Moderation;
  private readonly outboxes = new Outboxes((urgent) => this.wake(urgent));
  private readonly pipeline: TickPipeline;
  private readonly rooms: Rooms;
  private readonly ticker: Ticker;
  private readonly ingress: Ingress;
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
    const local = (uid: string) => this.membership.countOf(uid);
    this.users = o.users?.(local) ?? localUsers(local);
    this.pipeline = new TickPipeline({
      bus: o.bus,
      outboxes: this.outboxes,
      publisher: o.publisher,
      metrics: o.metrics,
      roomChatBudget: c.roomChatBudget,
      budgetShare: (room) => this.counts.budgetShare(room),
      review: o.review,
      events: o.events,
      onError: (err) => o.log.error({ err }, 'batch not delivered'),
      restAfterMs: c.maxTickMs,
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
    this.ingress = new Ingress({
      config: c,
      metrics: o.metrics,
      log: o.log,
      lag: this.lag,
      outboxes: this.outboxes,
      bus: o.bus,
      moderation: this.moderation,
      users: this.users,
      sessions: this.sessions,
      joins: this.joins,
      controls: this.controls,
      prefilter: o.prefilter,
      now: this.now,
    });
    this.api = new ApiActions({ bus: o.bus, outboxes: this.outboxes, pipeline: this.pipeline, membership: this.membership, counts: this.counts, now: this.now });
    this.controls.count();
    o.metrics.tickTarget.set(c.tickMs / 1000);
    this.ticker = new Ticker({
      tickMs: c.tickMs,
      maxTickMs: c.maxTickMs,
      // The ticker times the tick's own work: its append completes beside the next ticks.
      run: async () => this.pipeline.tick(),
      takeBusyMs: () => this.pipeline.takeFanoutMs(),
      loopBusy: loopBusySince(),
      talking: o.talking,
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
      this.ingress.sweep();
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

  /** How long a high-priority message may wait while the members storm (0 when they do not). */
  get stormWaitMs(): number {
    return this.ticker.stormWaitMs;
  }

  /** The current (possibly stretched) tick. */
  get effectiveTickMs(): number {
    return this.ticker.effectiveMs;
  }

  get ready(): boolean {
    return !this.draining && this.o.bus.available();
  }

  // ---- connections, as the gateway calls them ----

  /** A new connection; `initial` is the join requested in the upgrade's query. */
  open(c: Connection, sid: string, initial?: InitialJoin): void {
    this.sessions.open(c, sid);
    if (initial) this.ingress.initialJoin(c, initial);
  }

  /** One inbound WebSocket message. Never throws: bad input becomes an `error` frame. */
  frame(c: Connection, data: Uint8Array, isBinary: boolean): void {
    this.ingress.frame(c, data, isBinary);
  }

  closed(c: Connection): void {
    this.sessions.closed(c);
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
