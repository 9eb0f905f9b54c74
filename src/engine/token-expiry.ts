// Token deadlines of open connections (PROTOCOL §9): an `expiring` hint shortly before `exp`,
// then the 4010 close `tokenGraceSec` after it unless a refresh moved `exp`. One timer wheel
// per worker (deadlines.ts) and one timer, set for the next slot that holds a deadline: no
// timer per socket, and no wakeup while no deadline is near.
import type { Metrics } from '../metrics/metrics.js';
import { CLOSE } from '../protocol/errors.js';
import type { Connection } from '../rooms/connection.js';
import { Deadlines } from './deadlines.js';

/** Resolution of token deadlines: the wheel's slot length. */
export const SLOT_MS = 250;
/** `expiring` is sent this long before `exp` (or halfway through a shorter token's life). */
const EXPIRING_HINT_MS = 30_000;

export class TokenExpiry {
  private readonly deadlines: Deadlines<Connection>;
  /** Connections sent `expiring` for their current token (until refreshed or closed). */
  private readonly hinted = new Set<Connection>();
  private timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires (Infinity: none armed). */
  private armedAt = Infinity;
  private running = false;

  constructor(
    private readonly o: { graceSec: number; metrics: Metrics; now: () => number },
  ) {
    // The slot lives on the connection's engine state.
    this.deadlines = new Deadlines<Connection>(SLOT_MS, o.now(), {
      get: (c) => c.deadlineSlot,
      set: (c, slot) => void (c.deadlineSlot = slot),
    });
  }

  /** The connection's next token deadline (after open or a refresh): the hint, else the close. */
  schedule(c: Connection): void {
    this.hinted.delete(c);
    const exp = c.creds.exp * 1000;
    if (!Number.isFinite(exp)) return this.deadlines.delete(c);
    const now = this.o.now();
    const hintAt = exp - Math.min(EXPIRING_HINT_MS, (exp - now) / 2);
    this.set(c, hintAt > now ? hintAt : this.closeAt(c));
  }

  start(): void {
    this.running = true;
    this.arm(this.deadlines.nextDueMs());
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.armedAt = Infinity;
  }

  private set(c: Connection, dueMs: number): void {
    this.deadlines.set(c, dueMs);
    this.arm(this.deadlines.slotTime(dueMs));
  }

  /** The timer fires at `at` unless it is armed for earlier already. */
  private arm(at: number | undefined): void {
    if (!this.running || at === undefined || at >= this.armedAt) return;
    clearTimeout(this.timer);
    this.armedAt = at;
    this.timer = setTimeout(() => {
      this.armedAt = Infinity;
      this.walk();
      this.arm(this.deadlines.nextDueMs());
    }, Math.max(0, at - this.o.now()));
    this.timer.unref();
  }

  forget(c: Connection): void {
    this.hinted.delete(c);
    this.deadlines.delete(c);
  }

  /** Sends the hints and closes that fell due. */
  private walk(): void {
    const now = this.o.now();
    for (const c of this.deadlines.due(now)) {
      const exp = c.creds.exp * 1000;
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
    return c.creds.exp * 1000 + Math.max(0, this.o.graceSec * 1000 - 2 * SLOT_MS);
  }
}
