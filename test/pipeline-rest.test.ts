// A second pass in a row longer than the longest tick is followed by a rest of half its length:
// the room's next frame waits for it and takes everything that came meanwhile, so an overloaded
// worker merges instead of writing frame after frame back to back. One long pass alone (the
// first frames that fault in uWS's per-socket buffers, a GC) has no rest. settled() (a drain)
// ends a rest.
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

describe('the rest after long passes', () => {
  it('no rest after one long pass; after the second in a row, holds the next frame for half the pass, then sends what came meanwhile as one frame', async () => {
    const { bus, published, say } = await room({ passMs: 300, restAfterMs: 50 });
    try {
      say('one');
      await sleep(50);
      expect(seqsOf(published)).toEqual([1]);
      say('two'); // goes out when the first pass ends, without a rest
      await sleep(350);
      expect(seqsOf(published)).toEqual([1, 2]);
      expect(published[1]!.at - (published[0]!.at + 300)).toBeLessThan(100);
      say('three');
      await sleep(300); // the second long pass ended ~50 ms ago: its rest of ~150 ms is under way
      say('four');
      await sleep(400);
      expect(seqsOf(published)).toEqual([1, 2, 3, 4]);
      expect(published).toHaveLength(3); // three and four merged
      // Timers never fire early: the frame waited for the rest (without it, ~0 ms after the pass).
      expect(published[2]!.at - (published[1]!.at + 300)).toBeGreaterThanOrEqual(140);
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
      await sleep(50);
      long.say('two'); // the second long pass: from ~1 s to ~2 s
      await sleep(2050); // the passes are over; the rest lasts ~500 ms
      long.say('three');
      await sleep(50);
      expect(seqsOf(long.published)).toEqual([1, 2]);
      const t0 = performance.now();
      await long.pipeline.settled();
      await sleep(0);
      expect(seqsOf(long.published)).toEqual([1, 2, 3]);
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
      say('two'); // the second long pass: from ~1 s to ~2 s
      await sleep(1000);
      expect(seqsOf(published)).toEqual([1, 2]);
      const t0 = performance.now();
      await pipeline.settled(); // the pass ends ~950 ms from now; its rest would last ~500 ms more
      expect(performance.now() - t0).toBeLessThan(1350);
    } finally {
      await bus.close();
    }
  });
});
