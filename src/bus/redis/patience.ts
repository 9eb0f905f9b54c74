// How long a command may wait for Redis before it fails. A fixed timeout turns a starved
// scheduler into errors: when this process (or Redis) does not get the CPU for a while,
// replies arrive late, and a timer that fires after such a stall fires before the poll phase
// reads the reply already waiting in the socket. So the timeout follows the slowest recent
// round trip (×4, within [base, max]), and its timer is late-aware (util/late-timer.ts: the
// time a late timer lost is given back, and it fails only after the next poll phase, where a
// reply that came meanwhile is read and wins). Appends use a short base (their sender
// waits); member counts and reads a patient one. Only the wait is bounded here: a command
// that timed out is never sent again (an append may still be applied; its sender got
// UNAVAILABLE and sends again if it wants).
import { lateTimer } from '../../util/late-timer.js';

/** The remembered slowest round trip halves over this long (ms). */
const HALF_LIFE_MS = 10_000;

export class Patience {
  private slowest = 0;
  private at: number;

  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.at = now();
  }

  /** The timeout for a command sent now. */
  get timeoutMs(): number {
    this.decay();
    return Math.min(this.maxMs, Math.max(this.baseMs, this.slowest * 4));
  }

  /** A round trip that took `ms`. */
  note(ms: number): void {
    this.decay();
    if (ms > this.slowest) this.slowest = ms;
  }

  /** `p`, or a timeout Error when it takes longer than the timeout (late timers extended). */
  bound<T>(p: Promise<T>): Promise<T> {
    const started = this.now();
    return new Promise<T>((resolve, reject) => {
      const cancel = lateTimer(this.timeoutMs, this.maxMs, (ms) => reject(new Error(`redis command timed out after ${Math.round(ms)} ms`)), this.now);
      p.then(
        (v) => {
          cancel();
          this.note(this.now() - started);
          resolve(v);
        },
        (err: unknown) => {
          cancel();
          reject(err);
        },
      );
    });
  }

  private decay(): void {
    const t = this.now();
    this.slowest *= 0.5 ** ((t - this.at) / HALF_LIFE_MS);
    this.at = t;
  }
}
