// A pass longer than the longest tick is followed by a rest of half its length: the room's
// next frame waits for it and takes everything that came meanwhile, so an overloaded worker
// merges instead of writing frame after frame back to back. settled() (a drain) ends a rest.
import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../src/bus/memory-bus.js';
import { seqsOf, startPipeline } from './pipeline-helpers.js';
import { sleep } from './helpers.js';

async function room(o: { passMs: number; restAfterMs: number }) {
  const bus = new MemoryBus({ history: 100 });
  const { pipeline, outboxes, published } = await startPipeline(bus, o);
  pipeline.followed('r', await bus.follow('r'));
  const say = (b: string) => {
    outboxes.addNormal('r', { msg: { u: 'u', k: 'chat', b, t: Date.now() }, reply: () => {} });
    pipeline.tick();
  };
  return { bus, pipeline, published, say };
}

describe('the rest after a long pass', () => {
  it('holds the next frame for half the pass, then sends what came meanwhile as one frame', async () => {
    const { bus, published, say } = await room({ passMs: 300, restAfterMs: 50 });
    try {
      say('one');
      await sleep(50);
      expect(seqsOf(published)).toEqual([1]);
      const passEnds = published[0]!.at + 300;
      say('two');
      await sleep(300); // the pass ended ~50 ms ago: its rest of ~150 ms is half over
      say('three');
      await sleep(400);
      expect(seqsOf(published)).toEqual([1, 2, 3]);
      expect(published).toHaveLength(2); // two and three merged
      // Timers never fire early: the frame waited for the rest (without it, ~0 ms after the pass).
      expect(published[1]!.at - passEnds).toBeGreaterThanOrEqual(140);
    } finally {
      await bus.close();
    }
  });

  it('a pass within the longest tick has no rest; settled() ends a rest in progress', async () => {
    const short = await room({ passMs: 100, restAfterMs: 1000 });
    try {
      short.say('one');
      await sleep(20);
      short.say('two'); // appended during the pass: goes out when it ends
      await sleep(300);
      expect(seqsOf(short.published)).toEqual([1, 2]);
      expect(short.published[1]!.at - short.published[0]!.at).toBeLessThan(280);
    } finally {
      await short.bus.close();
    }
    const long = await room({ passMs: 1000, restAfterMs: 50 });
    try {
      long.say('one');
      await sleep(1100); // the pass is over; the rest lasts ~500 ms
      long.say('two');
      await sleep(50);
      expect(seqsOf(long.published)).toEqual([1]);
      const t0 = performance.now();
      await long.pipeline.settled();
      await sleep(0);
      expect(seqsOf(long.published)).toEqual([1, 2]);
      expect(performance.now() - t0).toBeLessThan(400);
    } finally {
      await long.bus.close();
    }
  });

  it('settled() does not wait out the rest of a pass that ends while it waits', async () => {
    const { bus, pipeline, published, say } = await room({ passMs: 1000, restAfterMs: 50 });
    try {
      say('one');
      await sleep(50);
      expect(seqsOf(published)).toEqual([1]);
      const t0 = performance.now();
      await pipeline.settled(); // the pass ends ~950 ms from now; its rest would last ~500 ms more
      expect(performance.now() - t0).toBeLessThan(1350);
    } finally {
      await bus.close();
    }
  });
});
