// A live frame carries at most FRAME_MAX_BYTES of messages (a bigger entry goes alone): what a
// room gets during a pass beyond that waits for the next pass, in order, instead of one frame
// that grows with the backlog (bench/notes/big-room.md, session 17: 4 MB frames, a third of the
// bytes per second, collapse).
import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../src/bus/memory-bus.js';
import { FRAME_MAX_BYTES } from '../src/tick/batch.js';
import { seqsOf, startPipeline } from './pipeline-helpers.js';
import { sleep } from './helpers.js';

describe('live frame size', () => {
  it('splits what came during a pass into frames of at most FRAME_MAX_BYTES, in order', async () => {
    const bus = new MemoryBus({ history: 100 });
    const { pipeline, outboxes, published } = await startPipeline(bus, { passMs: 100 });
    const say = (b: string) => {
      outboxes.addNormal('r', { msg: { u: 'u', k: 'chat', b, t: Date.now() }, reply: () => {} });
      pipeline.tick();
    };
    try {
      pipeline.followed('r', await bus.follow('r'));
      say('first');
      await sleep(20);
      expect(seqsOf(published)).toEqual([1]);
      // During the pass: three entries of ~0.4 × the cap, then one of twice the cap.
      const part = 'x'.repeat(Math.floor(FRAME_MAX_BYTES * 0.4));
      // (A tick's append is in flight for a moment; what is queued meanwhile joins the next entry.)
      for (const b of [part, part, part, 'y'.repeat(FRAME_MAX_BYTES * 2), 'last']) {
        say(b);
        await sleep(5);
      }
      await sleep(800);
      expect(seqsOf(published)).toEqual([1, 2, 3, 4, 5, 6]);
      const frames = published.slice(1).map((p) => [p.from, p.to]);
      // 2+3 fit together, 4 does not; 5 is bigger than a frame and goes alone; 6 follows it.
      expect(frames).toEqual([[2, 3], [4, 4], [5, 5], [6, 6]]);
      for (const p of published) {
        const bytes = p.msgs.reduce((n, m) => n + String(m.b).length, 0);
        if (p.from < p.to) expect(bytes).toBeLessThanOrEqual(FRAME_MAX_BYTES);
      }
      // Each waited for the pass before it.
      for (let i = 2; i < published.length; i++) expect(published[i]!.at - published[i - 1]!.at).toBeGreaterThanOrEqual(95);
    } finally {
      await bus.close();
    }
  });
});
