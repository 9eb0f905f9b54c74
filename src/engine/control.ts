// Moderation actions shared by moderator ops and the server API (kick, mute, disconnect):
// sent on the bus's control channel so every worker applies them in one order, and applied
// here to this worker's members. The moderator ops (`kick`, `mute`) are checked here too.
import type { ControlChannel, ControlCommand } from '../bus/bus.js';
import type { Config } from '../config/schema.js';
import type { Metrics } from '../metrics/metrics.js';
import { encodeFrame } from '../protocol/codec.js';
import { CLOSE, WireError } from '../protocol/errors.js';
import type { ClientOp } from '../protocol/ops.js';
import type { Connection, RoomPublisher } from '../rooms/connection.js';
import type { Membership } from '../rooms/membership.js';
import type { Moderation } from '../rooms/moderation.js';
import { RateLimiter } from '../util/token-bucket.js';

export interface ControlOptions {
  bus: ControlChannel;
  moderation: Moderation;
  membership: Membership;
  publisher: RoomPublisher;
  metrics: Metrics;
  config: Pick<Config, 'kickSeconds' | 'muteSeconds' | 'modRate' | 'modBurst'>;
  now: () => number;
  /** Takes `c` out of the room (it is a member). */
  leave(c: Connection, room: string): void;
  /** A kick arrived while `c` was joining the room: that join must end with `err`. */
  cancelJoin(c: Connection, room: string, err: WireError): void;
}

export class ControlActions {
  /** Moderator ops per moderator. */
  private readonly limit: RateLimiter;

  constructor(private readonly o: ControlOptions) {
    this.limit = new RateLimiter({ rate: o.config.modRate, burst: o.config.modBurst }, o.now);
  }

  /** A moderator's `kick` or `mute` op, acked once the command is on the control channel. */
  async moderate(c: Connection, op: Extract<ClientOp, { op: 'kick' | 'mute' }>): Promise<void> {
    if (c.creds.role !== 'moderator') throw new WireError('FORBIDDEN', 'moderators only');
    if (!c.rooms.has(op.room)) throw new WireError('NOT_JOINED');
    const wait = this.limit.take(c.creds.uid);
    if (wait > 0) throw new WireError('RATE_LIMITED', 'too many moderator ops', wait);
    if (op.op === 'kick') await this.kick(op.room, op.uid, op.seconds, op.reason);
    else await this.mute(op.room, op.uid, op.seconds ?? this.o.config.muteSeconds);
    c.send({ op: 'ack', ref: op.ref, shown: true });
  }

  /** Kicks `uid` out of the room on every worker and bans rejoining for `seconds`. */
  async kick(room: string, uid: string, seconds = this.o.config.kickSeconds, reason?: string): Promise<void> {
    await this.send({ type: 'kick', room, uid, reason, untilMs: this.o.now() + seconds * 1000 });
  }

  /** Closes every connection of `uid` on every node (bye, then 4011); refuses its upgrades for `seconds`. */
  async disconnect(uid: string, seconds = 0, reason?: string): Promise<void> {
    await this.send({ type: 'disconnect', uid, reason, untilMs: this.o.now() + seconds * 1000 });
  }

  /** Mutes `uid` (or, without uid, the whole room's chat) for `seconds`; 0 unmutes. */
  async mute(room: string, uid: string | undefined, seconds: number): Promise<number> {
    const untilMs = seconds > 0 ? this.o.now() + seconds * 1000 : 0;
    await this.send({ type: 'mute', room, uid, untilMs });
    return untilMs;
  }

  private async send(cmd: ControlCommand): Promise<void> {
    try {
      await this.o.bus.control(cmd);
    } catch {
      throw new WireError('UNAVAILABLE', 'control channel unreachable');
    }
  }

  /** A control command from the bus, applied to this worker's members. */
  apply(cmd: ControlCommand): void {
    const { moderation, membership, now } = this.o;
    if (cmd.type === 'disconnect') {
      moderation.banUser(cmd.uid, cmd.untilMs);
      const reason = cmd.reason ?? 'disconnected by the server';
      const reconnectMs = Math.max(0, cmd.untilMs - now());
      for (const c of membership.connectionsOf(cmd.uid)) {
        c.send({ op: 'bye', reason, reconnectMs });
        c.close(CLOSE.DISCONNECTED, 'disconnected');
      }
      return;
    }
    const { room } = cmd;
    if (cmd.type === 'kick') {
      moderation.ban(room, cmd.uid, cmd.untilMs);
      this.count();
      for (const c of membership.connectionsOf(cmd.uid)) {
        this.o.cancelJoin(c, room, new WireError('KICKED', 'kicked from this room', Math.max(0, cmd.untilMs - now())));
        if (!c.rooms.has(room)) continue;
        this.o.leave(c, room);
        c.send(cmd.reason === undefined ? { op: 'kicked', room } : { op: 'kicked', room, reason: cmd.reason });
      }
      return;
    }
    moderation.mute(room, cmd.uid, cmd.untilMs);
    this.count();
    if (cmd.uid === undefined) {
      if (membership.has(room)) this.o.publisher.publish(room, encodeFrame({ op: 'muted', room, until: cmd.untilMs, all: true }));
      return;
    }
    for (const c of membership.connectionsOf(cmd.uid)) {
      if (c.rooms.has(room)) c.send({ op: 'muted', room, until: cmd.untilMs });
    }
  }

  /** Forgets idle moderator buckets and expired bans and mutes; counts the tables. */
  sweep(): void {
    this.limit.sweep();
    this.o.moderation.sweep();
    this.count();
  }

  /** The moderation tables' sizes as metrics. */
  count(): void {
    for (const [table, n] of Object.entries(this.o.moderation.sizes())) this.o.metrics.moderationEntries.set({ table }, n);
  }
}
