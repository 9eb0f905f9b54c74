// The tick pipeline on a real Redis streams bus: a worker's own appended entry is published in
// the same tick (not a tick later, after the bus read it back), its read copy is not published
// again, and an entry from another worker in between still goes out in log order.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStreamsBus } from '../src/bus/redis-streams-bus.js';
import { seqsOf, startPipeline } from './pipeline-helpers.js';
import { RedisServer } from './redis-server.js';
import { sleep } from './helpers.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await RedisServer.launch();
});
afterAll(async () => {
  await redis?.close();
});

let n = 0;
async function worker(prefix: string) {
  const bus = new RedisStreamsBus({ target: { url: redis.url }, prefix, history: 100, workerId: `p${++n}`, heartbeatMs: 1000, reconnectMaxMs: 200, commandTimeoutMs: 1000 });
  const { pipeline, outboxes, published } = await startPipeline(bus);
  const say = (room: string, b: string) =>
    new Promise<unknown>((resolve) => outboxes.addHigh(room, { msg: { u: 'sys', k: 'system', b, t: Date.now() }, reply: resolve }));
  return { bus, pipeline, published, say };
}

describe('a worker publishes its own entries in the tick that appended them', () => {
  it('same tick, no duplicate from the read copy, and log order with another worker', async () => {
    const prefix = `own${process.pid}`;
    const a = await worker(prefix);
    const b = await worker(prefix);
    const room = 'r-own';
    try {
      a.pipeline.followed(room, await a.bus.follow(room));
      b.pipeline.followed(room, await b.bus.follow(room));

      // A's own entry: out in the very tick that appended it.
      const acked = a.say(room, 'one');
      a.pipeline.tick();
      await a.pipeline.settled();
      expect(await acked).toEqual({ shown: true, seq: 1 });
      expect(a.published).toEqual([{ from: 1, to: 1, msgs: [expect.objectContaining({ b: 'one' })], at: expect.any(Number) }]);

      // The bus reads it back; the next ticks do not publish it again.
      await sleep(200);
      a.pipeline.tick();
      await a.pipeline.settled();
      a.pipeline.tick();
      await a.pipeline.settled();
      expect(a.published).toHaveLength(1);

      // B appends seq 2; A has not read it yet when it appends seq 3: A's entry must wait for
      // the read, so its members still get 2 before 3.
      const fromB = b.say(room, 'two');
      b.pipeline.tick();
      await b.pipeline.settled();
      expect(await fromB).toEqual({ shown: true, seq: 2 });
      const fromA = a.say(room, 'three');
      a.pipeline.tick();
      await a.pipeline.settled();
      expect(await fromA).toEqual({ shown: true, seq: 3 });
      for (let i = 0; i < 50 && a.published.at(-1)?.to !== 3; i++) {
        await sleep(20);
        a.pipeline.tick();
        await a.pipeline.settled();
      }
      expect(seqsOf(a.published)).toEqual([1, 2, 3]);
      expect(a.published.flatMap((p) => p.msgs.map((m) => m.b))).toEqual(['one', 'two', 'three']);
    } finally {
      await a.bus.close();
      await b.bus.close();
    }
  });

  it("answers the append's senders before its fan-out (a 202 never waits for the worker's socket writes)", async () => {
    const a = await worker(`reply${process.pid}`);
    const room = 'r-reply-first';
    try {
      a.pipeline.followed(room, await a.bus.follow(room));
      const acked = a.say(room, 'first');
      a.pipeline.tick();
      expect(await acked).toEqual({ shown: true, seq: 1 });
      // The HTTP route answers a few promise hops after the reply (guard, mount, cork): all of
      // them run before this worker publishes its own entry.
      for (let hop = 0; hop < 20; hop++) await Promise.resolve();
      expect(a.published).toHaveLength(0);
      await a.pipeline.settled();
      expect(seqsOf(a.published)).toEqual([1]);
    } finally {
      await a.bus.close();
    }
  });
});
