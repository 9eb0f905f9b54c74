// Moderation actions shared by moderator ops and the server API (kick, mute, disconnect):
// sent on the bus's control channel so every worker applies them in one order, and applied
// here to this worker's members.
import type { ControlChannel, ControlCommand } from '../bus/bus.js';
import type { Metrics } from '../metrics/metrics.js';
import { encodeFrame } from '../protocol/codec.js';
import { CLOSE, WireError } from '../protocol/errors.js';
import type { Connection, RoomPublisher } from '../rooms/connection.js';
import type { Membership } from '../rooms/membership.js';
import type { Moderation } from '../rooms/moderation.js';

export interface ControlOptions {
  bus: ControlChannel;
  moderation: Moderation;
  membership: Membership;
  publisher: RoomPublisher;
  metrics: Metrics;
  kickSeconds: number;
  now: () => number;
  /** Takes `c` out of the room (it is a member). */
  leave(c: Connection, room: string): void;
  /** A kick arrived while `c` was joining the room: that join must end with `err`. */
  cancelJoin(c: Connection, room: string, err: WireError): void;
}

export class ControlActions {
  constructor(private readonly o: ControlOptions) {}

  /** Kicks `uid` out of the room on every worker and bans rejoining for `seconds`. */
  async kick(room: string, uid: string, seconds = this.o.kickSeconds, reason?: string): Promise<void> {
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

  /** The moderation tables' sizes as metrics. */
  count(): void {
    for (const [table, n] of Object.entries(this.o.moderation.sizes())) this.o.metrics.moderationEntries.set({ table }, n);
  }
}
