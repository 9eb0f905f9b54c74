// Gives back V8's young generation once a burst is over. V8 grows the young generation (up
// to 2 × --max-semi-space-size) while the worker allocates fast, as during a connect burst,
// and shrinks it only at a GC that finds allocation slow. An idle worker allocates too little
// to GC at all, so the grown young generation stayed resident for minutes after the burst:
// 16 MiB at 18k members a worker, ~0.9 KiB per member, more than a member's own JS state
// (bench/notes/big-room.md). One minor GC once the loop has been quiet for a check period
// lets V8 shrink it (measured 3.6 ms at 18k members). Busy workers are left alone.
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { PerformanceObserver } from 'node:perf_hooks';

/** How often the loop's busy share is checked; quiet for this long is "the burst is over". */
export const TRIM_CHECK_MS = 10_000;

/** The loop was quiet if it was busy at most this share of the last check period. */
export const TRIM_QUIET_BUSY = 0.05;

/** Trim only a young generation grown past this (V8 starts it at 1 MiB here). */
export const TRIM_ABOVE_BYTES = 2 * 1024 * 1024;

type Gc = (options: { type: 'minor' }) => void;

/**
 * V8's own gc function. Node exposes it only under --expose-gc; setting that flag at run time
 * and reading `gc` from a fresh context is the way Jest's leak detector gets it too, and it
 * works however roomcast was started (npm start, the supervisor's forks, an embedding app).
 */
function exposedGc(): Gc {
  const g = (globalThis as { gc?: Gc }).gc;
  if (g) return g;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as Gc;
}

export function youngGenBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
}

export interface YoungGenTrimOptions {
  /** Share (0..1) of the loop's time spent busy since the previous call. */
  busySince: () => number;
  /** Called after each trim, with the young generation's bytes before and after. */
  onTrim?: (beforeBytes: number, afterBytes: number) => void;
  checkMs?: number;
}

/**
 * Starts watching; returns the function that stops it. A check is armed by a GC (only
 * allocation grows the young generation, and allocating makes GCs), so an idle worker runs
 * no timer for it; the check re-arms while the loop is busy and stops once there is nothing
 * to give back.
 */
export function startYoungGenTrim(o: YoungGenTrimOptions): () => void {
  const gc = exposedGc();
  const checkMs = o.checkMs ?? TRIM_CHECK_MS;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    if (timer) return;
    o.busySince(); // the quiet period starts now
    timer = setTimeout(check, checkMs);
    timer.unref();
  };
  const check = () => {
    timer = undefined;
    if (o.busySince() > TRIM_QUIET_BUSY) return arm();
    const before = youngGenBytes();
    if (before <= TRIM_ABOVE_BYTES) return;
    gc({ type: 'minor' });
    o.onTrim?.(before, youngGenBytes());
  };
  const gcs = new PerformanceObserver(arm);
  gcs.observe({ entryTypes: ['gc'] });
  return () => {
    gcs.disconnect();
    clearTimeout(timer);
    timer = undefined;
  };
}
