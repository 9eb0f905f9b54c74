// The idle worker's periodic work, on a fake clock: the slow-socket sweep looks at every
// socket only after something was written (a backlog only grows through a write), the
// loop-lag sampler behind shedding runs only while there is traffic, and token deadlines
// arm one timer for the next one instead of walking the wheel every slot.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SlowWatch, SLOW_WATCH_MS } from '../src/gateway/slow-watch.js';
import { LAG_IDLE_STOP_MS, LoopLag } from '../src/metrics/event-loop.js';
import { Registry } from 'prom-client';
import { createMetrics } from '../src/metrics/metrics.js';
import { SLOT_MS, TokenExpiry } from '../src/engine/token-expiry.js';
import { ConnState, type Connection } from '../src/rooms/connection.js';

class Sock {
  reads = 0;
  constructor(public buffered = 0) {}
  bufferedAmount(): number {
    this.reads++;
    return this.buffered;
  }
}

describe('SlowWatch', () => {
  it('sweeps every socket after a write, only the candidates otherwise', () => {
    const all = new Set(Array.from({ length: 100 }, () => new Sock()));
    const w = new SlowWatch<Sock>();
    expect(w.busy).toBe(false); // the gateway arms no sweep timer
    expect(w.sweep(all, 0)).toBe(0); // nothing written yet: idle
    expect([...all].every((s) => s.reads === 0)).toBe(true);

    const slow = [...all][7]!;
    slow.buffered = 5000;
    w.noteWrite();
    expect(w.busy).toBe(true);
    expect(w.sweep(all, 1000)).toBe(100);
    expect([...w.candidates()]).toEqual([slow]);
    // idle again: only the known candidate is looked at, and it stays one while backlogged
    const reads = [...all].map((s) => s.reads);
    expect(w.sweep(all, 2000)).toBe(1);
    expect([...all].map((s) => s.reads)).toEqual(reads.map((r, i) => (i === 7 ? r + 1 : r)));
    // drained: it is dropped SLOW_WATCH_MS after it was last seen with a backlog
    slow.buffered = 0;
    w.sweep(all, 2000 + SLOW_WATCH_MS);
    expect([...w.candidates()]).toEqual([slow]);
    expect(w.busy).toBe(true); // still watching it: the sweep goes on
    w.sweep(all, 2001 + SLOW_WATCH_MS);
    expect([...w.candidates()]).toEqual([]);
    expect(w.busy).toBe(false);
  });
});

describe('LoopLag', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  // Its measure of a real stall is tested with a stalled loop in ws-shed.test.ts.
  it('samples only while it is read', () => {
    const lag = new LoopLag();
    lag.start();
    expect(lag.active).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    expect(lag.ms).toBe(0); // the first read starts the sampler
    expect(lag.active).toBe(true);
    vi.advanceTimersByTime(LAG_IDLE_STOP_MS - 100);
    expect(lag.ms).toBe(0);
    expect(lag.active).toBe(true); // read again: it goes on
    // no reads: the timer stops
    vi.advanceTimersByTime(LAG_IDLE_STOP_MS + 100);
    expect(lag.active).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    lag.stop();
  });

  it('never samples when shedding is off (not started)', () => {
    const lag = new LoopLag();
    expect(lag.ms).toBe(0);
    expect(lag.active).toBe(false);
  });
});

describe('TokenExpiry', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sleeps until the next deadline instead of walking the wheel every slot', () => {
    const expiry = new TokenExpiry({ graceSec: 5, metrics: createMetrics(new Registry(), { defaultMetrics: false }), now: Date.now });
    expiry.start();
    expect(vi.getTimerCount()).toBe(0);
    const sent: unknown[] = [];
    // A connection: its engine state (ConnState) is where the wheel keeps its slot.
    const conn = Object.assign(new ConnState(), { creds: { exp: Date.now() / 1000 + 3_600 }, send: (f: unknown) => sent.push(f), close: () => {} }) as unknown as Connection;
    expiry.schedule(conn);
    expect(vi.getTimerCount()).toBe(1); // one timer, for the `expiring` hint 30 s before exp
    vi.advanceTimersByTime(3_600_000 - 31_000);
    expect(sent).toEqual([]);
    vi.advanceTimersByTime(1_000 + SLOT_MS);
    expect(sent).toEqual([{ op: 'expiring', in: expect.any(Number) }]);
    expect(vi.getTimerCount()).toBe(1); // now armed for the close
    expiry.forget(conn);
    expiry.stop();
    expect(vi.getTimerCount()).toBe(0);
  });
});
