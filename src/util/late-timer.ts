// A timeout that counts only the time this process was running. A timer that fires after the
// process was starved (descheduled, or its loop busy for seconds) fires before the poll phase
// reads the answers that came meanwhile: a fixed timeout then turns slowness into failures.
// So a late timer gives the time it lost back once (within `maxMs` of the start), and the
// expiry runs only after the next poll phase (setImmediate), where an answer already waiting
// in a socket or a pipe is read and cancels it.

/** A timer this late (ms) means the process was not running while it was due. */
const LATE_MS = 50;

/** Calls `expire` after `ms` of running time (at most `maxMs` in all); returns the cancel. */
export function lateTimer(ms: number, maxMs: number, expire: (elapsedMs: number) => void, now: () => number = () => performance.now()): () => void {
  const started = now();
  let timer: NodeJS.Timeout | undefined;
  let last: NodeJS.Immediate | undefined;
  const arm = (wait: number) => {
    const due = now() + wait;
    timer = setTimeout(() => {
      const t = now();
      const late = t - due;
      const left = maxMs - (t - started);
      if (late > LATE_MS && left > 0) return arm(Math.min(late, left));
      last = setImmediate(() => expire(t - started));
    }, wait);
  };
  arm(ms);
  return () => {
    clearTimeout(timer);
    clearImmediate(last);
  };
}
