// util/late-timer.ts: a timeout that counts only the time this process was running. After a
// stall of this process's loop, an answer already waiting in a pipe is read before the timer
// counts (a real child process answers while the loop is blocked).
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { lateTimer } from '../src/util/late-timer.js';

function stall(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    /* busy */
  }
}

describe('lateTimer', () => {
  it('an answer that came during a stall longer than the whole bound wins', async () => {
    const cat = spawn('cat', [], { stdio: ['pipe', 'pipe', 'ignore'] });
    try {
      const outcome = await new Promise<string>((resolve) => {
        const cancel = lateTimer(100, 200, (ms) => resolve(`expired after ${Math.round(ms)} ms`));
        cat.stdout.once('data', () => {
          cancel();
          resolve('answered');
        });
        cat.stdin.write('x');
        stall(600); // cat echoes within a millisecond; this process reads it only after the stall
      });
      expect(outcome).toBe('answered');
    } finally {
      cat.kill();
    }
  });

  it('expires after its time when nothing answers, and gives a late firing its lost time back', async () => {
    const t0 = performance.now();
    const expired = await new Promise<number>((resolve) => lateTimer(100, 1000, () => resolve(performance.now() - t0)));
    expect(expired).toBeGreaterThanOrEqual(99);
    const t1 = performance.now();
    const late = new Promise<number>((resolve) => lateTimer(100, 1000, () => resolve(performance.now() - t1)));
    stall(300); // the timer fires ~200 ms late: it waits ~200 ms more before expiring
    expect(await late).toBeGreaterThanOrEqual(480);
  });
});
