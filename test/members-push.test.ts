// The members push throttle: a change that grows with the room (1% up to 10k, up to 25%), and a
// gap that grows with the room (capped).
import { describe, expect, it } from 'vitest';
import { membersPushDue } from '../src/rooms/members-push.js';

const o = { membersPushMs: 2000, membersPushMaxMs: 30_000 };

describe('membersPushDue', () => {
  it('a small room: any change, once per interval', () => {
    expect(membersPushDue({ count: 2, at: 0 }, 3, 2000, o)).toBe(true);
    expect(membersPushDue({ count: 2, at: 0 }, 2, 2000, o)).toBe(false);
    // The timer's own period counts as a full gap (half a period of slack).
    expect(membersPushDue({ count: 2, at: 0 }, 3, 1000, o)).toBe(true);
    expect(membersPushDue({ count: 2, at: 0 }, 3, 999, o)).toBe(false);
  });

  it('needs a change of at least 1%', () => {
    expect(membersPushDue({ count: 5000, at: 0 }, 5049, 10_000, o)).toBe(false);
    expect(membersPushDue({ count: 5000, at: 0 }, 5050, 10_000, o)).toBe(true);
    expect(membersPushDue({ count: 5000, at: 0 }, 4950, 10_000, o)).toBe(true);
  });

  it('the gap grows with the room: membersPushMs per 10k members', () => {
    // 50k members: 10 s between pushes.
    expect(membersPushDue({ count: 40_000, at: 0 }, 50_000, 8_999, o)).toBe(false);
    expect(membersPushDue({ count: 40_000, at: 0 }, 50_000, 9_000, o)).toBe(true);
  });

  it('caps the gap at membersPushMaxMs', () => {
    expect(membersPushDue({ count: 700_000, at: 0 }, 1_000_000, 28_999, o)).toBe(false);
    expect(membersPushDue({ count: 700_000, at: 0 }, 1_000_000, 29_000, o)).toBe(true);
  });

  it('the change a push waits for grows with the room, up to 25%', () => {
    // 20k members: 4%.
    expect(membersPushDue({ count: 20_000, at: 0 }, 20_799, 60_000, o)).toBe(false);
    expect(membersPushDue({ count: 20_000, at: 0 }, 20_800, 60_000, o)).toBe(true);
    // 1M members: 25%, either way.
    expect(membersPushDue({ count: 1_000_000, at: 0 }, 1_249_999, 60_000, o)).toBe(false);
    expect(membersPushDue({ count: 1_000_000, at: 0 }, 1_250_000, 60_000, o)).toBe(true);
    expect(membersPushDue({ count: 1_000_000, at: 0 }, 750_000, 60_000, o)).toBe(true);
  });

  /** Socket writes of all pushes while a room fills from 0 to `n` at `perSec` joins a second. */
  function rampWrites(n: number, perSec: number): number {
    let last: { count: number; at: number } | undefined;
    let writes = 0;
    // The push timer fires every membersPushMs; a minute more after the last join.
    for (let now = 0; now <= (n / perSec) * 1000 + 60_000; now += o.membersPushMs) {
      const count = Math.min(n, Math.floor((perSec * now) / 1000));
      if (count === 0 || (last !== undefined && !membersPushDue(last, count, now, o))) continue;
      last = { count, at: now };
      writes += count;
    }
    return writes;
  }

  it('a ramp to 1M members costs a number of push writes linear in the members, at any pace', () => {
    // 555/s is the pace of the 1M bench's connect phase (~30 min); 50/s fills for 5.5 hours.
    // A geometric series of ratio 1.25 sums to 5 × N; the small-room start adds under 1 × N.
    // (A fixed 1% change with a 30 s cap cost ~31 × N at 555/s and ~98 × N at 50/s.)
    for (const perSec of [50, 555, 5000]) expect(rampWrites(1_000_000, perSec)).toBeLessThanOrEqual(6_000_000);
    // Linear: 5× the members at the same pace (so a 5× longer ramp) costs at most 1.3 × 5× the
    // writes (the bound on growing faster than the room; the fixed 1% made it 2.6×).
    expect(rampWrites(1_000_000, 555)).toBeLessThanOrEqual(1.3 * 5 * rampWrites(200_000, 555));
  });

  it('a small room still sees every change', () => {
    let last = { count: 0, at: 0 };
    for (let count = 1, now = 2000; count <= 5; count++, now += 2000) {
      expect(membersPushDue(last, count, now, o)).toBe(true);
      last = { count, at: now };
    }
  });
});
