// Token deadlines of open connections (PROTOCOL §9): an `expiring` hint shortly before `exp`,
// then the 4010 close `tokenGraceSec` after it unless a refresh moved `exp`. One timer wheel
// per worker (deadlines.ts), walked every SLOT_MS: no timer per socket.
import type { Metrics } from '../metrics/metrics.js';
import { CLOSE } from '../protocol/errors.js';
import type { Connection } from '../rooms/connection.js';
import { Deadlines } from './deadlines.js';

/** Resolution of token deadlines: the wheel is walked this often. */
export const SLOT_MS = 250;
/** `expiring` is sent this long before `exp` (or halfway through a shorter token's life). */
const EXPIRING_HINT_MS = 30_000;

export class TokenExpiry {
  private readonly deadlines: Deadlines<Connection>;
  /** Connections sent `expiring` for their current token (until refreshed or closed). */
  private readonly hinted = new Set<Connection>();

  constructor(
    private readonly o: { graceSec: number; metrics: Metrics; now: () => number },
  ) {
    this.deadlines = new Deadlines(SLOT_MS, o.now());
  }

  /** The connection's next token deadline (after open or a refresh): the hint, else the close. */
  schedule(c: Connection): void {
    this.hinted.delete(c);
    const exp = c.creds.expMs;
    if (!Number.isFinite(exp)) return this.deadlines.delete(c);
    const now = this.o.now();
    const hintAt = exp - Math.min(EXPIRING_HINT_MS, (exp - now) / 2);
    this.deadlines.set(c, hintAt > now ? hintAt : this.closeAt(c));
  }

  forget(c: Connection): void {
    this.hinted.delete(c);
    this.deadlines.delete(c);
  }

  /** Sends the hints and closes that fell due (every SLOT_MS). */
  walk(): void {
    const now = this.o.now();
    for (const c of this.deadlines.due(now)) {
      const exp = c.creds.expMs;
      if (now < exp && !this.hinted.has(c)) {
        this.hinted.add(c);
        c.send({ op: 'expiring', in: Math.max(0, Math.round(exp - now)) });
        this.deadlines.set(c, this.closeAt(c));
      } else if (now >= this.closeAt(c)) {
        this.o.metrics.expiryCloses.inc();
        c.close(CLOSE.TOKEN_EXPIRED, 'token expired');
      } else {
        this.deadlines.set(c, this.closeAt(c));
      }
    }
  }

  /**
   * When an unrefreshed connection is closed: the configured grace after `exp`, less the
   * wheel's resolution (walk interval plus slot rounding), so the close is never later.
   */
  private closeAt(c: Connection): number {
    return c.creds.expMs + Math.max(0, this.o.graceSec * 1000 - 2 * SLOT_MS);
  }
}
