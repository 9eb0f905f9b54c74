// The client's heartbeat: after `intervalMs` without any frame from the server it sends a
// `ping`; when nothing at all arrives within `pongTimeoutMs` after that, the connection is dead.
import type { Clock, TimerHandle } from './clock.js';

export interface HeartbeatTarget {
  /** When the last frame arrived (ms) and how many have arrived so far. */
  lastRx(): number;
  rxCount(): number;
  /** Sends a ping; returns a function that forgets it (no pong expected any more). */
  ping(): () => void;
  /** Nothing arrived for `idleMs`: drop the connection. */
  dead(idleMs: number): void;
}

export class Heartbeat {
  private timer: TimerHandle | undefined;
  private pongTimer: TimerHandle | undefined;

  constructor(private readonly clock: Clock) {}

  start(intervalMs: number, pongTimeoutMs: number, t: HeartbeatTarget): void {
    this.stop();
    const check = () => {
      this.timer = undefined;
      const idle = this.clock.now() - t.lastRx();
      if (idle < intervalMs) {
        this.timer = this.clock.setTimeout(check, intervalMs - idle);
        return;
      }
      const seenAtPing = t.rxCount();
      const forget = t.ping();
      this.pongTimer = this.clock.setTimeout(() => {
        this.pongTimer = undefined;
        forget();
        if (t.rxCount() === seenAtPing) t.dead(this.clock.now() - t.lastRx());
        else this.timer = this.clock.setTimeout(check, intervalMs);
      }, pongTimeoutMs);
    };
    this.timer = this.clock.setTimeout(check, intervalMs);
  }

  stop(): void {
    for (const t of [this.timer, this.pongTimer]) if (t !== undefined) this.clock.clearTimeout(t);
    this.timer = this.pongTimer = undefined;
  }
}
