// Event-loop delay that reads ~0 on an idle process. Node's monitorEventLoopDelay records
// the time between two firings of a timer that repeats every `resolution` ms, so each
// sample is the period plus the delay: an idle worker sampled every 50 ms read 49-54 ms.
// prom-client exports those raw samples; these gauges (same names) subtract the period.
// Sampling wakes the process every period, so it runs only while the worker has traffic
// (LoopLag below resumes and pauses it); an idle or paused window reads 0.
// `hooks` is Node's own: LoopLag reads the global `performance` (test clocks replace that one).
import { monitorEventLoopDelay, performance as hooks } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

/**
 * Sampling period (ms). prom-client's default, 10 ms, wakes an idle worker 100 times a
 * second: on a node running dozens of workers that was most of their idle CPU.
 */
export const LAG_SAMPLE_MS = 50;

/** prom-client's own histogram is replaced below; sampled this rarely it costs nothing. */
export const UNUSED_LAG_SAMPLE_MS = 10_000;

const STATS = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'] as const;

/** Turns the event-loop delay sampling on and off. */
export interface LagSampling {
  resume(): void;
  pause(): void;
}

/**
 * Replaces prom-client's `<prefix>nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds`.
 * The sampling starts paused.
 */
export function registerEventLoopLag(registry: Registry, prefix: string): LagSampling {
  const h = monitorEventLoopDelay({ resolution: LAG_SAMPLE_MS });
  const period = LAG_SAMPLE_MS * 1e6;
  // A sample shorter than the period (timers fire on the loop's cached ms clock) is no delay.
  const delay = (ns: number) => Math.max(0, ns - period) / 1e9;
  const read: Record<(typeof STATS)[number], () => number> = {
    min: () => delay(h.min),
    max: () => delay(h.max),
    mean: () => delay(h.mean),
    stddev: () => h.stddev / 1e9,
    p50: () => delay(h.percentile(50)),
    p90: () => delay(h.percentile(90)),
    p99: () => delay(h.percentile(99)),
  };
  // The first gauge collected sets them all and starts a new window (as prom-client does).
  const collectAll = () => {
    STATS.forEach((stat, i) => gauges[i]!.set(h.count > 0 ? read[stat]() : 0));
    h.reset();
  };
  const gauges: Gauge[] = STATS.map((stat, i) => {
    const name = `${prefix}nodejs_eventloop_lag_${stat}_seconds`;
    registry.removeSingleMetric(name);
    return new Gauge({
      name,
      help: `${stat} event loop delay since the last scrape, without the ${LAG_SAMPLE_MS} ms sampling period`,
      registers: [registry],
      collect: i === 0 ? collectAll : undefined,
    });
  });
  return { resume: () => void h.enable(), pause: () => void h.disable() };
}

/** The lag sampler stops after this long without a reader (no inbound frames: no shedding to decide). */
export const LAG_IDLE_STOP_MS = 2000;

/**
 * The loop's lag right now, cheap enough to read per inbound frame: a timer every
 * LAG_SAMPLE_MS notes how late it fired. The lag is the larger of that last lateness (the
 * loop just came back from a stall, and what queued up meanwhile is being read) and how
 * overdue the timer is now (the loop has been busy since and has not got round to it).
 * The timer runs only while the worker has traffic (touch(): frames in, messages queued,
 * entries read): the first touch starts it, LAG_IDLE_STOP_MS without one stops it, so an
 * idle worker is not woken 20 times a second for it. The delay histogram follows it.
 */
export class LoopLag {
  private last = 0;
  private lateMs = 0;
  private readAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private enabled = false;

  constructor(private readonly sampling?: LagSampling) {}

  start(): void {
    this.enabled = true;
  }

  stop(): void {
    this.enabled = false;
    this.halt();
  }

  /** Whether the sampling timer is running (it is only while the worker has traffic). */
  get active(): boolean {
    return this.timer !== undefined;
  }

  /** The worker has traffic: sample while it lasts. */
  touch(): void {
    const now = performance.now();
    this.readAt = now;
    if (!this.timer && this.enabled) this.resume(now);
  }

  get ms(): number {
    this.touch();
    if (!this.timer) return 0;
    return Math.max(this.lateMs, performance.now() - this.last - LAG_SAMPLE_MS);
  }

  private resume(now: number): void {
    this.last = now;
    this.lateMs = 0;
    this.timer = setInterval(() => {
      const t = performance.now();
      this.lateMs = Math.max(0, t - this.last - LAG_SAMPLE_MS);
      this.last = t;
      if (t - this.readAt > LAG_IDLE_STOP_MS) this.halt();
    }, LAG_SAMPLE_MS);
    this.timer.unref();
    this.sampling?.resume();
  }

  private halt(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.sampling?.pause();
  }
}

/** Share (0..1) of the event loop's time spent busy between two calls (Node's loop utilization). */
export function loopBusySince(): () => number {
  let last = hooks.eventLoopUtilization();
  return () => {
    const now = hooks.eventLoopUtilization();
    const { utilization } = hooks.eventLoopUtilization(now, last);
    last = now;
    return utilization;
  };
}
