// What the server API asks of a worker beyond moderation: messages into a room's next tick,
// broadcasts to every room with members, and a room's state.
import type { ApiMessage } from '../api/message-body.js';
import type { Bus } from '../bus/bus.js';
import { WireError } from '../protocol/errors.js';
import type { Msg } from '../protocol/ops.js';
import type { Membership } from '../rooms/membership.js';
import type { Outboxes, Outcome } from '../tick/outbox.js';
import type { TickPipeline } from '../tick/pipeline.js';
import type { MemberCounts } from './member-counts.js';

export interface ApiActionsOptions {
  bus: Pick<Bus, 'available' | 'head' | 'topRooms'>;
  outboxes: Outboxes;
  pipeline: Pick<TickPipeline, 'lastDelivered' | 'rates'>;
  membership: Membership;
  counts: MemberCounts;
  now: () => number;
}

export class ApiActions {
  constructor(private readonly o: ApiActionsOptions) {}

  /** Queues an API message for the room's next tick; resolves when it is logged (or not). */
  post(room: string, m: ApiMessage): Promise<Outcome> {
    if (!this.o.bus.available()) return Promise.resolve({ error: new WireError('UNAVAILABLE') });
    return new Promise((resolve) => {
      const msg: Msg = { u: m.uid ?? 'system', k: m.kind, b: m.body, t: this.o.now() };
      if (m.name !== undefined) msg.n = m.name;
      if (m.x !== undefined) msg.x = m.x;
      const high = m.priority === 'high' || m.kind === 'system' || m.kind === 'gift';
      if (high) this.o.outboxes.addHigh(room, { msg, reply: resolve });
      else this.o.outboxes.addNormal(room, { msg, reply: resolve });
    });
  }

  /** An API message to every room that has members anywhere in the cluster. */
  async broadcast(m: ApiMessage): Promise<{ rooms: number; failed: number }> {
    const rooms = [...new Set([...this.o.bus.topRooms(Number.MAX_SAFE_INTEGER).map(([room]) => room), ...this.o.membership.counts().keys()])];
    const outcomes = await Promise.all(rooms.map((room) => this.post(room, m)));
    return { rooms: rooms.length, failed: outcomes.filter((o) => 'error' in o).length };
  }

  /** What GET /v1/rooms/:room reports. */
  async roomInfo(room: string): Promise<{ room: string; members: number; seq: number; epoch: string; ratePerSec: number }> {
    let head = this.o.pipeline.lastDelivered(room);
    if (!head) {
      try {
        head = await this.o.bus.head(room);
      } catch {
        throw new WireError('UNAVAILABLE', 'room log unreachable');
      }
    }
    const ratePerSec = Math.round(this.o.pipeline.rates.perSec(room) * 100) / 100;
    return { room, members: this.o.counts.of(room), seq: head.seq, epoch: head.epoch, ratePerSec };
  }
}
