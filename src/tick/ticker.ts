// The adaptive tick loop. A tick's work (append + deliver) runs to completion before the
// next one is scheduled; when the work, or the event loop being busy writing to sockets,
// outlasts the tick, the next tick waits longer: batches grow and frames per member per
// second fall instead of queues growing.
export interface TickerOptions {
  tickMs: number;
  maxTickMs: number;
  run: () => Promise<void>;
  /** A failed tick is reported and the loop goes on: one bad tick must not stop delivery. */
  onError: (err: unknown) => void;
  onTick?: (workMs: number, effectiveMs: number) => void;
  now?: () => number;
}

export class Ticker {
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private running: Promise<void> | undefined;
  private effective: number;
  private readonly now: () => number;

  constructor(private readonly o: TickerOptions) {
    this.effective = o.tickMs;
    this.now = o.now ?? (() => performance.now());
  }

  get effectiveMs(): number {
    return this.effective;
  }

  start(): void {
    this.stopped = false;
    this.schedule(this.o.tickMs, this.now());
  }

  private schedule(delay: number, plannedFrom: number): void {
    if (this.stopped) return;
    const due = plannedFrom + delay;
    this.timer = setTimeout(() => void this.fire(due), delay);
  }

  private async fire(due: number): Promise<void> {
    const start = this.now();
    const late = Math.max(0, start - due); // the loop was busy (socket writes, ingress)
    this.running = this.o.run().catch(this.o.onError);
    await this.running;
    this.running = undefined;
    const work = this.now() - start;
    const busy = work + late;
    // Keep 1/3 of the loop free for ingress and socket writes; smooth to avoid oscillation.
    const wanted = Math.min(this.o.maxTickMs, Math.max(this.o.tickMs, busy * 1.5));
    this.effective = wanted > this.effective ? wanted : this.effective * 0.8 + wanted * 0.2;
    this.o.onTick?.(work, this.effective);
    this.schedule(Math.max(0, this.effective - work), this.now());
  }

  /** Stops scheduling; resolves once a tick in progress has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
