/** When a room's `members` count is worth pushing again. */

/** The last push of a room: the count it carried and when. */
export interface MembersPush {
  count: number;
  at: number;
}

/** Relative change of the count that warrants a push in a room of up to 10k members. */
const CHANGE = 0.01;
/** The largest relative change a push waits for (rooms of 50k members and more). */
const MAX_CHANGE = 0.25;
/** Members per `membersPushMs` of gap between two pushes; also where the change starts to grow. */
const MEMBERS_PER_STEP = 10_000;

/**
 * The change a push waits for: 1% (at least 1) up to 10k members, then growing with the square
 * of the room (4% at 20k, 16% at 40k) up to 25% from 50k. A push is one frame to every member,
 * so while an audience pours in, a big room's pushes form a geometric series: the total of all
 * push writes over a ramp from 0 to N members stays near 5 × N, however long the ramp takes
 * (a fixed 1% made it one push per gap, and so grow with the ramp's length × N).
 */
function minChange(count: number): number {
  const rel = Math.min(MAX_CHANGE, CHANGE * Math.max(1, count / MEMBERS_PER_STEP) ** 2);
  return Math.max(1, count * rel);
}

/**
 * Due when the count moved by `minChange` since the last push, and at most once per
 * `membersPushMs` per 10k members, capped at `membersPushMaxMs` (a million-member room: one
 * push per 30 s at most, by default).
 */
export function membersPushDue(
  last: MembersPush,
  count: number,
  now: number,
  o: { membersPushMs: number; membersPushMaxMs: number },
): boolean {
  if (Math.abs(count - last.count) < minChange(last.count)) return false;
  const gap = Math.min(o.membersPushMaxMs, o.membersPushMs * Math.max(1, count / MEMBERS_PER_STEP));
  // Half a period of slack: the push timer fires every membersPushMs, not exactly at the gap.
  return now - last.at >= gap - o.membersPushMs / 2;
}
