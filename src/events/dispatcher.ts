// One sink's delivery: a bounded FIFO of events, sent in batches, one batch in flight at a
// time (so each room's events arrive in order), a failed batch retried with backoff before
// anything after it. Adding an event is O(1) and never waits: the tick never blocks on it.
// Over the bound, new events are dropped and counted.
import type { Counter, Gauge } from 'prom-client';
import { backoffMs, type BackoffSpec } from '../util/backoff.js';
import type { EventBatch, EventSink, RoomEvent } from './types.js';

export interface DispatcherOptions {
  sink: EventSink;
  node: string;
  /** Batch ids: `${prefix}-${n}`. */
  idPrefix: string;
  batchMax: number;
  maxQueue: number;
  retry: BackoffSpec;
  metrics: { sent: Counter<'sink'>; dropped: Counter<'sink'>; failures: Counter<'sink'>; queued: Gauge<'sink'> };
  onError: (err: unknown) => void;
  now: () => number;
}

export class Dispatcher {
  private queue: RoomEvent[] = [];
  private head = 0;
  private inFlight: EventBatch | undefined;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private batches = 0;
  private idle: Array<() => void> = [];

  constructor(private readonly o: DispatcherOptions) {}

  get pending(): number {
    return this.queue.length - this.head + (this.inFlight?.events.length ?? 0);
  }

  add(e: RoomEvent): void {
    const label = { sink: this.o.sink.name };
    if (this.queue.length - this.head >= this.o.maxQueue) return void this.o.metrics.dropped.inc(label);
    this.queue.push(e);
    this.o.metrics.queued.set(label, this.pending);
  }

  /** Sends what is queued (called once per flush interval); a retry in wait keeps its schedule. */
  flush(): void {
    if (this.inFlight || this.head === this.queue.length) return;
    const events = this.queue.slice(this.head, this.head + this.o.batchMax);
    this.head += events.length;
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.inFlight = { id: `${this.o.idPrefix}-${++this.batches}`, node: this.o.node, sentAt: 0, events };
    this.sendInFlight();
  }

  /** Resolves once nothing is queued or in flight, or after `ms`; returns what is left. */
  async settle(ms: number): Promise<number> {
    const deadline = this.o.now() + ms;
    while (this.pending > 0 && this.o.now() < deadline) {
      this.flush();
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - this.o.now()));
        this.idle.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.pending;
  }

  /** Stops retrying; what was not delivered is counted as dropped. */
  abandon(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const left = this.pending;
    this.queue = [];
    this.head = 0;
    this.inFlight = undefined;
    if (left > 0) this.o.metrics.dropped.inc({ sink: this.o.sink.name }, left);
    this.o.metrics.queued.set({ sink: this.o.sink.name }, 0);
  }

  private sendInFlight(): void {
    const batch = this.inFlight;
    if (!batch) return;
    batch.sentAt = this.o.now();
    const label = { sink: this.o.sink.name };
    this.o.sink.send(batch).then(
      () => {
        if (this.inFlight !== batch) return;
        this.inFlight = undefined;
        this.attempt = 0;
        this.o.metrics.sent.inc(label, batch.events.length);
        this.o.metrics.queued.set(label, this.pending);
        // More than one batch waiting: the next goes at once rather than a flush interval later.
        if (this.queue.length - this.head >= this.o.batchMax) this.flush();
        this.wake();
      },
      (err: unknown) => {
        if (this.inFlight !== batch) return;
        this.o.metrics.failures.inc(label);
        this.o.onError(err);
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.sendInFlight();
        }, backoffMs(this.attempt++, this.o.retry));
        this.retryTimer.unref();
        this.wake();
      },
    );
  }

  private wake(): void {
    for (const w of this.idle.splice(0)) w();
  }
}
