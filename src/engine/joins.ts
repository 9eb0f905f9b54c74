// The join and leave ops: who may enter a room (token, ban, a free room slot, the join rate)
// and one join per connection and room at a time, which a kick or a newer join cancels. The
// join itself (following, recovery, replay) is rooms.ts.
import { mayJoin } from '../auth/tokens.js';
import type { Config } from '../config/schema.js';
import type { Metrics } from '../metrics/metrics.js';
import { WireError } from '../protocol/errors.js';
import type { ClientOp } from '../protocol/ops.js';
import type { Connection } from '../rooms/connection.js';
import type { Membership } from '../rooms/membership.js';
import type { Moderation } from '../rooms/moderation.js';
import { RateLimiter } from '../util/token-bucket.js';
import type { JoinGuard, Rooms } from './rooms.js';
import type { Sessions } from './sessions.js';
import type { UserPresence } from './users.js';

export interface JoinsOptions {
  rooms: Pick<Rooms, 'join' | 'leave'>;
  membership: Pick<Membership, 'roomCount'>;
  moderation: Pick<Moderation, 'bannedFor' | 'roomMutedUntil'>;
  sessions: Pick<Sessions, 'isOpen'>;
  users: Pick<UserPresence, 'share'>;
  metrics: Metrics;
  config: Pick<Config, 'joinRate' | 'joinBurst' | 'maxRoomsPerConn'>;
  now: () => number;
}

interface JoinTicket {
  pending: boolean;
  /** Set by a kick, or by a newer join of the room replacing this one's replay. */
  cancelled?: WireError;
}

export class Joins {
  /** Joins in progress by connection and room: pending (no `joined` yet) or replaying; only while a join runs. */
  private readonly tickets = new WeakMap<Connection, Map<string, JoinTicket>>();
  private readonly limit: RateLimiter;

  constructor(private readonly o: JoinsOptions) {
    this.limit = new RateLimiter({ rate: o.config.joinRate, burst: o.config.joinBurst }, o.now);
  }

  async join(c: Connection, op: Extract<ClientOp, { op: 'join' }>): Promise<void> {
    const { room } = op;
    if (!this.o.sessions.isOpen(c)) return;
    let joins = this.tickets.get(c);
    if (!joins) this.tickets.set(c, (joins = new Map()));
    const prev = joins.get(room);
    if (prev?.pending) throw new WireError('RATE_LIMITED', 'a join of this room is already pending', 100);
    // Pending joins hold a room slot too, so waiting joins cannot exceed the room limit.
    const held = new Set(c.rooms);
    for (const [r, t] of joins) if (t.pending) held.add(r);
    this.mayEnter(c, room, held);
    const wait = this.limit.take(c.creds.uid, this.o.users.share(c.creds.uid));
    if (wait > 0) throw new WireError('RATE_LIMITED', 'too many joins', wait);
    // One join (and so one replay) per connection and room: a newer one replaces the replay.
    if (prev) prev.cancelled = new WireError('UNAVAILABLE', 'replaced by a newer join');
    const ticket: JoinTicket = { pending: true };
    joins.set(room, ticket);
    const guard: JoinGuard = {
      check: () => {
        if (!this.o.sessions.isOpen(c)) throw new WireError('UNAVAILABLE', 'connection closed');
        if (ticket.cancelled) throw ticket.cancelled;
        this.mayEnter(c, room, c.rooms);
      },
      joined: () => {
        ticket.pending = false;
      },
    };
    let recovered: boolean | undefined;
    try {
      recovered = await this.o.rooms.join(c, op, guard);
    } finally {
      if (joins.get(room) === ticket) joins.delete(room);
      if (joins.size === 0 && this.tickets.get(c) === joins) this.tickets.delete(c);
    }
    this.o.metrics.joins.inc({ result: recovered === undefined ? 'joined' : recovered ? 'recovered' : 'unrecovered' });
    this.o.metrics.rooms.set(this.o.membership.roomCount);
    const until = this.o.moderation.roomMutedUntil(room);
    if (until > 0) c.send({ op: 'muted', room, until, all: true });
  }

  leave(c: Connection, op: Extract<ClientOp, { op: 'leave' }>): void {
    this.o.rooms.leave(c, op.room);
    this.o.metrics.rooms.set(this.o.membership.roomCount);
    c.send({ op: 'left', ref: op.ref, room: op.room });
  }

  /** A kick arrived while `c` was joining the room: that join ends with `err`. */
  cancel(c: Connection, room: string, err: WireError): void {
    const pending = this.tickets.get(c)?.get(room);
    if (pending) pending.cancelled = err;
  }

  /** Forgets idle join buckets. */
  sweep(): void {
    this.limit.sweep();
  }

  /** Throws unless `c` may be in `room` now: its token allows it, no ban, a free room slot. */
  private mayEnter(c: Connection, room: string, held: ReadonlySet<string>): void {
    if (!mayJoin(c.creds, room)) throw new WireError('FORBIDDEN', 'token does not allow this room');
    const banned = this.o.moderation.bannedFor(room, c.creds.uid);
    if (banned > 0) throw new WireError('KICKED', 'kicked from this room', banned);
    const max = this.o.config.maxRoomsPerConn;
    if (!held.has(room) && held.size >= max) throw new WireError('TOO_MANY_ROOMS', `at most ${max} rooms per connection`);
  }
}
