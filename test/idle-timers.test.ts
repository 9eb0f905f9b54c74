// The idle worker's periodic work, on a fake clock: the slow-socket sweep looks at every
// socket only after something was written (a backlog only grows through a write), and the
// loop-lag sampler behind shedding runs only while inbound frames ask for it.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SlowWatch, SLOW_WATCH_MS } from '../src/gateway/slow-watch.js';
import { LAG_IDLE_STOP_MS, LoopLag } from '../src/metrics/event-loop.js';

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
    expect(w.sweep(all, 0)).toBe(0); // nothing written yet: idle
    expect([...all].every((s) => s.reads === 0)).toBe(true);

    const slow = [...all][7]!;
    slow.buffered = 5000;
    w.noteWrite();
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
    w.sweep(all, 2001 + SLOW_WATCH_MS);
    expect([...w.candidates()]).toEqual([]);
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
    expect(lag.sampling).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    expect(lag.ms).toBe(0); // the first read starts the sampler
    expect(lag.sampling).toBe(true);
    vi.advanceTimersByTime(LAG_IDLE_STOP_MS - 100);
    expect(lag.ms).toBe(0);
    expect(lag.sampling).toBe(true); // read again: it goes on
    // no reads: the timer stops
    vi.advanceTimersByTime(LAG_IDLE_STOP_MS + 100);
    expect(lag.sampling).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    lag.stop();
  });

  it('never samples when shedding is off (not started)', () => {
    const lag = new LoopLag();
    expect(lag.ms).toBe(0);
    expect(lag.sampling).toBe(false);
  });
});
