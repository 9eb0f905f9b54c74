// Giving back the young generation after a burst (src/util/young-gen-trim.ts), on this
// process's real V8 heap: first that V8 alone keeps a grown young generation while the loop is
// idle (the reason the trim exists), then that the trim gives it back once the loop is quiet.
import { afterEach, describe, expect, it } from 'vitest';
import { loopBusySince } from '../src/metrics/event-loop.js';
import { startYoungGenTrim, TRIM_ABOVE_BYTES, youngGenBytes } from '../src/util/young-gen-trim.js';
import { sleep } from './helpers.js';

/** A burst: objects that survive scavenges (as connect state does) grow the young generation. */
function burst(): void {
  let keep: Array<{ i: number; s: string }> = [];
  for (let i = 0; i < 4e6 && (i < 1e6 || youngGenBytes() <= 4 * TRIM_ABOVE_BYTES); i++) {
    keep.push({ i, s: `member-${i}` });
    if (keep.length > 4e5) keep = [];
  }
}

let stop: (() => void) | undefined;
afterEach(() => stop?.());

describe('young generation trim', () => {
  it('gives back a young generation grown by a burst once the loop is quiet, which V8 alone does not', async () => {
    burst();
    expect(youngGenBytes()).toBeGreaterThan(TRIM_ABOVE_BYTES);
    await sleep(1500);
    expect(youngGenBytes(), 'V8 shrank it by itself: the trim is not needed').toBeGreaterThan(TRIM_ABOVE_BYTES);

    const trims: Array<[number, number]> = [];
    stop = startYoungGenTrim({ busySince: loopBusySince(), checkMs: 200, onTrim: (before, after) => trims.push([before, after]) });
    burst(); // its GCs arm the check
    const deadline = Date.now() + 5000;
    while (youngGenBytes() > TRIM_ABOVE_BYTES && Date.now() < deadline) await sleep(50);
    expect(youngGenBytes()).toBeLessThanOrEqual(TRIM_ABOVE_BYTES);
    expect(trims.length).toBeGreaterThanOrEqual(1);
    expect(trims[0]![0]).toBeGreaterThan(TRIM_ABOVE_BYTES);
  });

  it('leaves a busy loop alone', async () => {
    const trims: number[] = [];
    stop = startYoungGenTrim({ busySince: () => 0.5, checkMs: 100, onTrim: (before) => trims.push(before) });
    burst();
    await sleep(600);
    expect(youngGenBytes()).toBeGreaterThan(TRIM_ABOVE_BYTES);
    expect(trims).toEqual([]);
  });
});
