// On a bus that does not read its own appends back (the embedded memory bus, a Redis Cluster),
// a tick's frame is published in the tick's own loop turn: the ticker runs the tick after the
// loop's poll, so waiting for the next turn put the writes of the pass just published (uWS
// writes them as the turn ends) between the tick and its frame, one pass of latency more than
// a bare uWS server (bench/notes/big-room.md, session 16).
import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../src/bus/memory-bus.js';
import { seqsOf, startPipeline } from './pipeline-helpers.js';

describe('a tick on the memory bus', () => {
  it("publishes the tick's frame before the loop's next turn", async () => {
    const bus = new MemoryBus({ history: 100 });
    const { pipeline, outboxes, published } = await startPipeline(bus);
    try {
      pipeline.followed('r', await bus.follow('r'));
      outboxes.addNormal('r', { msg: { u: 'u', k: 'chat', b: 'hi', t: Date.now() }, reply: () => {} });
      pipeline.tick();
      const atNextTurn = await new Promise<number[]>((resolve) => setImmediate(() => resolve(seqsOf(published))));
      expect(atNextTurn).toEqual([1]);
    } finally {
      await bus.close();
    }
  });
});
