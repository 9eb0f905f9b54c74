/** When a room's `members` count is worth pushing again. */

/** The last push of a room: the count it carried and when. */
export interface MembersPush {
  count: number;
  at: number;
}

/** Relative change of the count that warrants a push. */
const CHANGE = 0.01;
/** Members per `membersPushMs` of gap between two pushes. */
const MEMBERS_PER_STEP = 10_000;

/**
 * A push is one frame to every member, so a huge room gets fewer of them: only on a change of
 * at least 1% (while an audience pours in, the count changes every interval), and at most once
 * per `membersPushMs` per 10k members, capped at `membersPushMaxMs` (a million-member room:
 * one push per 30 s by default).
 */
export function membersPushDue(
  last: MembersPush,
  count: number,
  now: number,
  o: { membersPushMs: number; membersPushMaxMs: number },
): boolean {
  if (Math.abs(count - last.count) < Math.max(1, last.count * CHANGE)) return false;
  const gap = Math.min(o.membersPushMaxMs, o.membersPushMs * Math.max(1, count / MEMBERS_PER_STEP));
  // Half a period of slack: the push timer fires every membersPushMs, not exactly at the gap.
  return now - last.at >= gap - o.membersPushMs / 2;
}
