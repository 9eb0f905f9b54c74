// MemberTalk: members' frames per second as a 0..1 level (a storm is 1), which shortens the
// fan-out's turns (sliceFor) and stretches the tick while the members talk.
import { describe, expect, it } from 'vitest';
import { MemberTalk, STORM_FRAMES_PER_SEC } from '../src/gateway/member-talk.js';
import { sliceFor } from '../src/gateway/room-fanout.js';

/** Feeds `perSec` frames per second for `ms`, reading the level every 50 ms; returns the last level. */
function feed(t: MemberTalk, from: number, ms: number, perSec: number): number {
  let level = 0;
  for (let at = from + 50; at <= from + ms; at += 50) {
    t.frames += (perSec * 50) / 1000;
    level = t.level(at);
  }
  return level;
}

describe('member talk', () => {
  it('is 0 while members only listen, 1 in a storm, and falls back once it ends', () => {
    const t = new MemberTalk();
    expect(feed(t, 0, 2000, 0)).toBe(0);
    expect(feed(t, 2000, 2000, 2 * STORM_FRAMES_PER_SEC)).toBe(1);
    expect(feed(t, 4000, 3000, 0)).toBeLessThan(0.1);
  });

  it('reads half a storm as half', () => {
    const t = new MemberTalk();
    expect(feed(t, 0, 5000, STORM_FRAMES_PER_SEC / 2)).toBeCloseTo(0.5, 1);
  });

  it('shortens the fan-out turn to one shard in a storm', () => {
    expect(sliceFor(250, 0)).toBe(250);
    expect(sliceFor(250, 0.5)).toBe(125);
    expect(sliceFor(250, 1)).toBe(0);
  });
});
