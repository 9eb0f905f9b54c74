// How long a command may wait for Redis before it fails. A fixed timeout turns a starved
// scheduler into errors: when this process (or Redis) does not get the CPU for a while,
// replies arrive late, and a timer that fires after such a stall fires before the poll phase
// reads the reply already waiting in the socket. So the timeout follows the slowest recent
// round trip (×4, within [base, max]), a timer that fired late (this process was not running)
// gives the time it lost back once, within max, and a timeout fails only after the next poll
// phase (a reply read there wins). Appends use a short base (their sender waits); member
// counts and reads a patient one. Only the wait is bounded here: a command that timed out is
// never sent again (an append may still be applied; its sender got UNAVAILABLE and sends
// again if it wants).

/** A timer this late (ms) means the process was not running while it was due. */
const LATE_MS = 50;
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
      let timer: NodeJS.Timeout | undefined;
      let last: NodeJS.Immediate | undefined;
      const arm = (ms: number) => {
        const due = this.now() + ms;
        timer = setTimeout(() => {
          const t = this.now();
          const late = t - due;
          const left = this.maxMs - (t - started);
          if (late > LATE_MS && left > 0) return arm(Math.min(late, left));
          // Timers run before the poll phase: a reply that came during a stall is read after
          // this one, and settles `p` before the check phase runs this.
          last = setImmediate(() => reject(new Error(`redis command timed out after ${Math.round(t - started)} ms`)));
        }, ms);
      };
      arm(this.timeoutMs);
      const done = () => {
        clearTimeout(timer);
        clearImmediate(last);
      };
      p.then(
        (v) => {
          done();
          this.note(this.now() - started);
          resolve(v);
        },
        (err: unknown) => {
          done();
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
