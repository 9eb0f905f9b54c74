// A connection's session, from the upgrade to the close: admission, its per-connection state,
// the welcome, token refreshes (PROTOCOL §9) and the drain's goodbye.
import { randomInt } from 'node:crypto';
import { AuthError, mayJoin, type TokenVerifier } from '../auth/tokens.js';
import type { Config } from '../config/schema.js';
import type { Metrics } from '../metrics/metrics.js';
import { CLOSE, WireError } from '../protocol/errors.js';
import type { ClientOp } from '../protocol/ops.js';
import type { Connection } from '../rooms/connection.js';
import type { Membership } from '../rooms/membership.js';
import type { Moderation } from '../rooms/moderation.js';
import type { Rooms } from './rooms.js';
import type { TokenExpiry } from './token-expiry.js';
import type { UserPresence } from './users.js';

export interface SessionsOptions {
  membership: Membership;
  rooms: Pick<Rooms, 'leave' | 'dropped'>;
  moderation: Pick<Moderation, 'userBannedFor'>;
  users: UserPresence;
  expiry: Pick<TokenExpiry, 'schedule' | 'forget'>;
  /** Verifies the tokens of `refresh` ops. */
  verifier: TokenVerifier;
  metrics: Metrics;
  config: Pick<Config, 'idleTimeoutSec' | 'maxConnsPerUser' | 'drainMs'>;
  nodeId: string;
  now: () => number;
}

/** Why an upgrade is refused before a socket exists. */
export interface Refusal {
  status: number;
  code: string;
  message: string;
}

export class Sessions {
  constructor(private readonly o: SessionsOptions) {}

  /** Refuses an upgrade before a socket exists: a banned user, or one over its connection cap. */
  admit(uid: string): Refusal | undefined {
    const banned = this.o.moderation.userBannedFor(uid);
    if (banned > 0) return { status: 403, code: 'BANNED', message: `disconnected by the server; banned for ${Math.ceil(banned / 1000)} s` };
    const max = this.o.config.maxConnsPerUser;
    if (this.o.users.count(uid) >= max) return { status: 429, code: 'RATE_LIMITED', message: `at most ${max} connections per user` };
    return undefined;
  }

  /** A new connection: registered, counted, welcomed with its session id. */
  open(c: Connection, sid: string): void {
    c.open = true;
    this.o.membership.addConnection(c);
    if (c.creds.role !== 'guest') this.o.users.opened(c.creds.uid);
    this.o.expiry.schedule(c);
    this.o.metrics.connections.inc();
    c.send({ op: 'welcome', sid, uid: c.creds.uid, node: this.o.nodeId, hb: this.o.config.idleTimeoutSec });
  }

  closed(c: Connection): void {
    if (!c.open) return;
    c.open = false;
    this.o.expiry.forget(c);
    if (c.creds.role !== 'guest') this.o.users.closed(c.creds.uid);
    this.o.rooms.dropped(c);
    this.o.metrics.connections.dec();
    this.o.metrics.rooms.set(this.o.membership.roomCount);
  }

  isOpen(c: Connection): boolean {
    return c.open;
  }

  /**
   * A fresh token for the same user: its expiry, name, rooms and role apply from now on, and
   * rooms it no longer allows are left. A bad token or another user's changes nothing.
   */
  refresh(c: Connection, op: Extract<ClientOp, { op: 'refresh' }>): void {
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
    if (c.creds.role === 'guest' || creds.uid !== c.creds.uid) refused('forbidden', new WireError('FORBIDDEN', 'the token is for another user'));
    c.creds = creds;
    for (const room of [...c.rooms]) {
      if (mayJoin(creds, room)) continue;
      this.o.rooms.leave(c, room);
      c.send({ op: 'left', room });
    }
    this.o.metrics.rooms.set(this.o.membership.roomCount);
    this.o.expiry.schedule(c);
    this.o.metrics.tokenRefreshes.inc({ result: 'ok' });
    c.send({ op: 'refreshed', ref: op.ref, exp: Math.floor(creds.exp) });
  }

  /** Draining: `bye` with a jittered reconnect delay to everyone. */
  bye(reason: string): void {
    for (const c of this.o.membership.all()) c.send({ op: 'bye', reason, reconnectMs: randomInt(0, this.o.config.drainMs + 1) });
  }

  closeAll(reason: string): void {
    for (const c of [...this.o.membership.all()]) c.close(CLOSE.GOING_AWAY, reason);
  }
}
