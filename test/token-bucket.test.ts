// The one token bucket (src/util/token-bucket.ts) and the per-worker deadline wheel, on a fake clock.
import { describe, expect, it } from 'vitest';
import { RateLimiter, TokenBucket } from '../src/util/token-bucket.js';
import { Deadlines, type SlotAccess } from '../src/engine/deadlines.js';

/** The items' slots in a map, as the wheel kept them before they moved onto the connections. */
function mapSlots(): SlotAccess<string> {
  const m = new Map<string, number>();
  return { get: (k) => m.get(k), set: (k, slot) => void (slot === undefined ? m.delete(k) : m.set(k, slot)) };
}

describe('TokenBucket', () => {
  it('starts with what it is given, refills at rate up to capacity, and says how long to wait', () => {
    const b = new TokenBucket(3, 0);
    expect([b.take(0, 1, 3), b.take(0, 1, 3), b.take(0, 1, 3)]).toEqual([0, 0, 0]);
    expect(b.take(0, 1, 3)).toBe(1000);
    expect(b.take(500, 1, 3)).toBe(500);
    expect(b.take(1000, 1, 3)).toBe(0);
    expect(b.refill(60_000, 1, 3)).toBe(3); // never above capacity
  });

  it('takes a rate and capacity that change between calls (a share of a shared budget)', () => {
    const b = new TokenBucket(10, 0);
    expect(b.refill(0, 10, 5)).toBe(5);
    b.spend(5);
    expect(b.refill(1000, 2, 5)).toBe(2);
  });
});

describe('RateLimiter', () => {
  it('keeps one bucket per key and scales rate and burst by the share, never below one token', () => {
    let now = 0;
    const l = new RateLimiter({ rate: 1, burst: 4 }, () => now);
    expect([l.take('a'), l.take('a'), l.take('a'), l.take('a'), l.take('a') > 0]).toEqual([0, 0, 0, 0, true]);
    expect(l.take('b', 0.5)).toBe(0);
    expect(l.take('b', 0.5)).toBe(0);
    expect(l.take('b', 0.5)).toBe(2000); // half the rate: 2 s per token
    expect(l.take('c', 0.1)).toBe(0); // a tenth of a burst of 4 is still one token
    expect(l.take('c', 0.1)).toBe(10_000);
    now = 60_000;
    l.sweep();
    expect(l.take('a')).toBe(0);
  });

  it('gives the whole burst at a rate that does not divide a second, at an epoch-sized clock', () => {
    let now = 1_765_000_000_000;
    const l = new RateLimiter({ rate: 7, burst: 3 }, () => now); // 142.857… ms per token
    expect([l.take('u'), l.take('u'), l.take('u')]).toEqual([0, 0, 0]);
    expect(l.take('u')).toBe(143);
    now += 143;
    expect([l.take('u'), l.take('u') > 0]).toEqual([0, true]);
  });

  it('takes several tokens at once, all or none; more than the burst never passes; a share still passes a cost up to the burst', () => {
    let now = 0;
    const l = new RateLimiter({ rate: 10, burst: 10 }, () => now);
    expect(l.take('u', 1, 6)).toBe(0);
    expect(l.take('u', 1, 6)).toBe(200); // 4 left: 2 more come in 200 ms, none is taken meanwhile
    expect(l.take('u', 1, 4)).toBe(0);
    now += 200;
    expect(l.take('u', 1, 2)).toBe(0);
    expect(l.take('v', 1, 11)).toBe(Infinity);
    expect(l.take('v', 1, 10)).toBe(0);
    // Half of a shared burst of 10 still passes a frame of 6, at half the rate.
    expect(l.take('w', 0.5, 6)).toBe(0);
    expect(l.take('w', 0.5, 6)).toBe(1200);
    now += 1200;
    expect(l.take('w', 0.5, 6)).toBe(0);
  });

  it('holds a key only until its bucket is full again: the sweep drops it from then on', () => {
    let now = 1_765_000_000_000;
    const l = new RateLimiter({ rate: 1, burst: 4 }, () => now);
    expect(l.take('once')).toBe(0); // 3 of 4 left: full again 1 s later
    expect([l.take('twice'), l.take('twice')]).toEqual([0, 0]);
    now += 999;
    l.sweep();
    expect(l.size).toBe(2);
    now += 1;
    l.sweep();
    expect(l.size).toBe(1); // 'twice' lacks another second
    now += 1000;
    l.sweep();
    expect(l.size).toBe(0);
  });
});

describe('Deadlines', () => {
  it('fires each item once, on the first walk at or after its deadline; rescheduling and deleting move it', () => {
    const d = new Deadlines<string>(250, 0, mapSlots());
    d.set('a', 100);
    d.set('b', 600);
    d.set('c', 600);
    d.set('c', 2000);
    d.set('gone', 300);
    d.delete('gone');
    expect(d.due(240)).toEqual([]);
    expect(d.due(250)).toEqual(['a']);
    expect(d.due(749)).toEqual([]);
    expect(d.due(750)).toEqual(['b']);
    expect(d.size).toBe(1);
    expect(d.due(10_000)).toEqual(['c']);
    d.set('late', 5); // already past: the next walk
    expect(d.due(10_250)).toEqual(['late']);
  });

  it('gives the same answers at an epoch-sized clock (slots count from the wheel\'s start)', () => {
    const t0 = 1_765_000_000_123; // ms since the epoch: slot numbers past the small-integer range
    const d = new Deadlines<string>(250, t0, mapSlots());
    expect(d.nextDueMs()).toBeUndefined();
    d.set('a', t0 + 100);
    d.set('b', t0 + 600);
    expect(d.slotTime(t0 + 100)).toBe(Math.ceil((t0 + 100) / 250) * 250);
    expect(d.slotTime(t0 - 5000)).toBe((Math.floor(t0 / 250) + 1) * 250); // past: the next walk
    expect(d.nextDueMs()).toBe(d.slotTime(t0 + 100));
    expect(d.due(t0 + 10)).toEqual([]);
    expect(d.due(d.slotTime(t0 + 100))).toEqual(['a']);
    expect(d.nextDueMs()).toBe(d.slotTime(t0 + 600));
    expect(d.due(t0 + 5000)).toEqual(['b']);
    expect(d.nextDueMs()).toBeUndefined();
  });

  it("an item deleted and set again in the same slot fires once, and the slot's list stays bounded", () => {
    const d = new Deadlines<string>(250, 0, mapSlots());
    d.set('keep', 600);
    for (let i = 0; i < 10_000; i++) {
      d.set('a', 600);
      d.set('a', 600); // the same slot again: nothing to do
      d.delete('a');
      d.set('a', 600); // listed twice now, until a compaction
      d.delete('a');
    }
    d.set('a', 600);
    expect(d.size).toBe(2);
    // A list per slot, compacted as items leave it: not one entry per set() ever made.
    const slots = (d as unknown as { slots: Map<number, { items: string[] }> }).slots;
    expect([...slots.values()][0]!.items.length).toBeLessThan(40);
    expect(d.due(750).sort()).toEqual(['a', 'keep']);
    expect(d.size).toBe(0);
  });
});
