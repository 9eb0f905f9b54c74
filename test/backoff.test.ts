import { describe, expect, it } from 'vitest';
import { backoffMs } from '../src/util/backoff.js';

describe('backoffMs', () => {
  const spec = { baseMs: 100, maxMs: 1000 };
  it('doubles the ceiling per attempt up to the cap, with equal jitter', () => {
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffMs(a, spec, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffMs(a, spec, () => 0))).toEqual([50, 100, 200, 400, 500, 500]);
  });
  it('survives huge and negative attempt counts', () => {
    expect(backoffMs(1e9, spec, () => 1)).toBe(1000);
    expect(backoffMs(-3, spec, () => 1)).toBe(100);
  });
});
