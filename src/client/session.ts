// The client's token: the one to connect with, when it expires, and getting a fresh one from
// `getToken()` — before a connect when it is about to expire, after the server refused it or
// closed the connection with 4010, and ahead of `exp` on an open connection, where the fresh
// token is handed on (`onFresh`) to be sent as a `refresh` op.
import { MAX_TIMER_MS, type Clock, type TimerHandle } from './clock.js';
import { RoomcastError } from './errors.js';
import { tokenExpiryMs } from './token.js';

/** The soonest a failed or repeated refresh is tried again. */
export const MIN_REFRESH_MS = 5_000;

export interface TokenSessionOptions {
  clock: Clock;
  getToken?: () => string | Promise<string>;
  /** Refresh this long before `exp`. */
  marginMs: number;
  error(e: RoomcastError): void;
  /** A fresh token from a scheduled or requested refresh (not from a connect). */
  onFresh(token: string): void;
}

export class TokenSession {
  token: string | undefined;
  /** The token's `exp` in ms, when it has one. */
  expMs: number | undefined;
  private at = 0;
  private force = false;
  private reportedExpired = false;
  private timer: TimerHandle | undefined;
  private fetching = false;
  private stopped = false;

  constructor(private readonly o: TokenSessionOptions) {}

  /** Before a connect: a token that is there, valid beyond the margin and not distrusted. */
  async ensure(): Promise<void> {
    const now = this.o.clock.now();
    const expiring = this.expMs !== undefined && this.expMs - now <= this.o.marginMs;
    const get = this.o.getToken;
    if (!get) {
      if (this.token !== undefined && this.expMs !== undefined && this.expMs <= now && !this.reportedExpired) {
        this.reportedExpired = true;
        this.o.error(new RoomcastError('UNAUTHORIZED', 'the token has expired and there is no getToken to refresh it'));
      }
      return;
    }
    if (this.token !== undefined && !this.force && !expiring) return;
    this.set(await callGetToken(get));
  }

  set(token: string): void {
    this.token = token;
    this.expMs = tokenExpiryMs(token);
    this.at = this.o.clock.now();
    this.force = false;
    this.reportedExpired = false;
    this.schedule();
  }

  /** The server refused the token (or may have): the next connect asks getToken first. */
  distrust(): void {
    this.force = true;
  }

  /** ms since the current token was obtained. */
  age(): number {
    return this.o.clock.now() - this.at;
  }

  /** Gets a fresh token now (the server said `expiring`), unless one is being fetched. */
  refreshNow(): void {
    if (this.fetching || !this.o.getToken || this.stopped) return;
    if (this.timer !== undefined) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.fetch(this.o.getToken);
  }

  /** Schedules the next refresh: `marginMs` before `exp`, or after `delayMs`. */
  schedule(delayMs?: number): void {
    if (this.timer !== undefined) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const get = this.o.getToken;
    if (!get || this.stopped || this.expMs === undefined) return;
    const due = delayMs ?? Math.max(MIN_REFRESH_MS, this.expMs - this.o.marginMs - this.o.clock.now());
    this.timer = this.o.clock.setTimeout(() => {
      this.timer = undefined;
      this.fetch(get);
    }, Math.min(due, MAX_TIMER_MS));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private fetch(get: () => string | Promise<string>): void {
    this.fetching = true;
    callGetToken(get).then(
      (t) => {
        this.fetching = false;
        if (this.stopped) return;
        this.set(t);
        this.o.onFresh(t);
      },
      (err: unknown) => {
        this.fetching = false;
        if (this.stopped) return;
        this.o.error(new RoomcastError('TOKEN_FAILED', `getToken failed: ${String((err as Error)?.message ?? err)}`, { cause: err }));
        this.schedule(MIN_REFRESH_MS);
      },
    );
  }
}

export async function callGetToken(get: () => string | Promise<string>): Promise<string> {
  const t = await get();
  if (typeof t !== 'string' || t.length === 0) throw new Error('getToken() did not return a token string');
  return t;
}
