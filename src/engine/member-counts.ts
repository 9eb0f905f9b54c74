// Member counts: this worker's members reported to the bus, the cluster-wide counts the API
// and the budget read, and the `members` pushes to each room (only on change, less often in
// huge rooms: rooms/members-push.ts).
import type { Presence } from '../bus/bus.js';
import type { Config } from '../config/schema.js';
import type { Metrics } from '../metrics/metrics.js';
import { encodeFrame } from '../protocol/codec.js';
import type { RoomPublisher } from '../rooms/connection.js';
import { membersPushDue, type MembersPush } from '../rooms/members-push.js';
import type { Membership } from '../rooms/membership.js';

export interface MemberCountsOptions {
  presence: Presence;
  membership: Membership;
  publisher: RoomPublisher;
  metrics: Metrics;
  config: Pick<Config, 'membersPushMs' | 'membersPushMaxMs' | 'metricsTopRooms'>;
  now: () => number;
}

export class MemberCounts {
  private readonly lastPushed = new Map<string, MembersPush>();

  constructor(private readonly o: MemberCountsOptions) {}

  /** Reports this worker's counts, pushes `members` where due, refreshes the top-rooms series. */
  push(): void {
    const { presence, metrics } = this.o;
    const counts = this.o.membership.counts();
    presence.reportMembers(counts);
    metrics.rooms.set(counts.size);
    const now = this.o.now();
    for (const room of counts.keys()) {
      const count = Math.max(presence.members(room), counts.get(room) ?? 0);
      const last = this.lastPushed.get(room);
      if (last !== undefined && !membersPushDue(last, count, now, this.o.config)) continue;
      this.lastPushed.set(room, { count, at: now });
      this.o.publisher.publish(room, encodeFrame({ op: 'members', room, count }));
    }
    for (const room of this.lastPushed.keys()) if (!counts.has(room)) this.lastPushed.delete(room);
    const top = presence.topRooms(this.o.config.metricsTopRooms);
    metrics.roomMembers.reset();
    for (const [room, n] of top) metrics.roomMembers.set({ room }, n);
    metrics.roomStats.track(top.map(([room]) => room));
  }

  /**
   * This worker's share of a room's chat budget: its fraction of the room's members (the
   * kernel spreads members, and so senders, evenly), at least 10% so a worker without
   * members can still pass API messages of normal priority.
   */
  budgetShare(room: string): number {
    const local = this.o.membership.count(room);
    const all = Math.max(this.o.presence.members(room), local);
    return all === 0 ? 1 : Math.min(1, Math.max(0.1, local / all));
  }

  /** Member count as the API reports it. */
  of(room: string): number {
    return Math.max(this.o.presence.members(room), this.o.membership.count(room));
  }

  /** The largest rooms, cluster-wide. */
  top(n: number): Array<{ room: string; members: number }> {
    const counts = new Map(this.o.presence.topRooms(n));
    for (const [room, local] of this.o.membership.counts()) counts.set(room, Math.max(local, counts.get(room) ?? 0));
    return [...counts].sort((a, b) => b[1] - a[1]).slice(0, n).map(([room, members]) => ({ room, members }));
  }
}
