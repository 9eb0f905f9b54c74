// The members push throttle: 1% change, and a gap that grows with the room (capped).
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
    expect(membersPushDue({ count: 49_000, at: 0 }, 50_000, 8_999, o)).toBe(false);
    expect(membersPushDue({ count: 49_000, at: 0 }, 50_000, 9_000, o)).toBe(true);
  });

  it('caps the gap at membersPushMaxMs', () => {
    expect(membersPushDue({ count: 900_000, at: 0 }, 1_000_000, 28_999, o)).toBe(false);
    expect(membersPushDue({ count: 900_000, at: 0 }, 1_000_000, 29_000, o)).toBe(true);
  });
});
