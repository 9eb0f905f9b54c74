// MemberTalk: members' frames per second as a 0..1 level (a storm is 1), which shortens the
// fan-out's turns (sliceFor) and stretches the tick while the members talk.
import { describe, expect, it } from 'vitest';
import { MemberTalk, STORM_FRAMES_PER_SEC } from '../src/gateway/member-talk.js';
import { sliceFor } from '../src/gateway/room-fanout.js';

function talk() {
  let now = 0;
  const t = new MemberTalk(() => now);
  /** `perSec` frames a second for `ms`, spread evenly, the level read every `readEveryMs`; returns the last level. */
  const feed = (ms: number, perSec: number, readEveryMs = 50): number => {
    let level = 0;
    const end = now + ms;
    let nextRead = now + readEveryMs;
    for (let n = 0; n < (perSec * ms) / 1000; n++) {
      now += 1000 / perSec;
      while (now >= nextRead) {
        level = t.level();
        nextRead += readEveryMs;
      }
      t.frame();
    }
    for (now = Math.max(now, nextRead); now <= end; now += readEveryMs) level = t.level();
    now = end;
    return level;
  };
  return { t, feed };
}

describe('member talk', () => {
  it('is 0 while members only listen, 1 in a storm, and falls back once it ends', () => {
    const { feed } = talk();
    expect(feed(2000, 0)).toBe(0);
    expect(feed(2000, 2 * STORM_FRAMES_PER_SEC)).toBe(1);
    expect(feed(3000, 0)).toBeLessThan(0.1);
  });

  it('reads a storm within a fifth of a second of its start, and its end over a second', () => {
    const { feed } = talk();
    feed(2000, 0);
    expect(feed(200, 2 * STORM_FRAMES_PER_SEC)).toBe(1);
    expect(feed(200, 0)).toBeGreaterThan(0.5);
  });

  it('reads a storm after a quiet spell without reads at its own rate, not averaged over the spell', () => {
    // Nothing read the level for 10 s (no tick ran); the storm's first 100 ms come, then a read.
    const { t, feed } = talk();
    feed(10_000, 0, 20_000);
    feed(100, 2 * STORM_FRAMES_PER_SEC, 20_000);
    expect(t.level()).toBe(1);
  });

  it('reads half a storm as half', () => {
    const { feed } = talk();
    expect(feed(5000, STORM_FRAMES_PER_SEC / 2)).toBeCloseTo(0.5, 1);
  });

  it('reads sparse frames at their rate across a quiet spell', () => {
    const { t, feed } = talk();
    feed(10_000, STORM_FRAMES_PER_SEC / 10, 20_000);
    expect(t.level()).toBeCloseTo(0.1, 1);
  });

  it('shortens the fan-out turn to one shard from a quarter of a storm', () => {
    expect(sliceFor(250, 0)).toBe(250);
    expect(sliceFor(250, 0.1)).toBe(150);
    expect(sliceFor(250, 0.25)).toBe(0);
    expect(sliceFor(250, 1)).toBe(0);
  });
});
