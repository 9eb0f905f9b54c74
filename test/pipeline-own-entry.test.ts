// The tick pipeline on a real Redis streams bus: a worker's own appended entry is published in
// the same tick (not a tick later, on the bus's paced read), its read copy is not published
// again, an entry from another worker in between still goes out in log order, and on one Redis
// the read that brings the own entry back at once carries the other workers' too: one frame.
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
async function worker(prefix: string, o: { deliverReads?: boolean; paceMs?: number } = {}) {
  const bus = new RedisStreamsBus({
    target: { url: redis.url },
    prefix,
    history: 100,
    workerId: `p${++n}`,
    heartbeatMs: 1000,
    reconnectMaxMs: 200,
    commandTimeoutMs: 1000,
    readPaceMs: o.paceMs === undefined ? undefined : () => o.paceMs!,
  });
  const { pipeline, outboxes, published } = await startPipeline(bus, { deliverReads: o.deliverReads });
  const say = (room: string, b: string) =>
    new Promise<unknown>((resolve) => outboxes.addHigh(room, { msg: { u: 'sys', k: 'system', b, t: Date.now() }, reply: resolve }));
  // Chat does not nudge the other workers' readers (a system message does).
  const chat = (room: string, b: string) =>
    new Promise<unknown>((resolve) => outboxes.addNormal(room, { msg: { u: 'u1', k: 'chat', b, t: Date.now() }, reply: resolve }));
  return { bus, pipeline, published, say, chat };
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

  it("goes out with the other workers' entries of the moment: the read after the append brings both", async () => {
    // Reads on the pace would come 4 s apart: only the read the append asks for is quick.
    const prefix = `both${process.pid}`;
    const a = await worker(prefix, { deliverReads: true, paceMs: 4000 });
    const b = await worker(prefix, { deliverReads: true, paceMs: 4000 });
    const room = 'r-both';
    try {
      a.pipeline.followed(room, await a.bus.follow(room));
      b.pipeline.followed(room, await b.bus.follow(room));
      const round = async (w: typeof a, text: string) => {
        const acked = w.chat(room, text);
        w.pipeline.tick();
        await w.pipeline.settled();
        return acked;
      };
      // A's first read starts its pace; B's entry then waits in Redis for A's next read.
      expect(await round(a, 'one')).toEqual({ shown: true, seq: 1 });
      await sleep(100);
      expect(await round(b, 'two')).toEqual({ shown: true, seq: 2 });
      const before = performance.now();
      expect(await round(a, 'three')).toEqual({ shown: true, seq: 3 });
      expect(a.published.map((p) => [p.from, p.to])).toEqual([
        [1, 1],
        [2, 3],
      ]);
      expect(a.published[1]!.at - before).toBeLessThan(1000);
      // Alone, its own entry still goes out at once, in a frame of its own.
      await round(a, 'four');
      expect(a.published.map((p) => [p.from, p.to])).toEqual([
        [1, 1],
        [2, 3],
        [4, 4],
      ]);
    } finally {
      await a.bus.close();
      await b.bus.close();
    }
  });
});
