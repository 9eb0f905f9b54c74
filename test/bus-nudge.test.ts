// A gift or system message does not wait for other workers' paced bus reads: its append
// nudges their readers (the partition's nudge stream). Two pipelines on a real Redis, and on
// a real Redis Cluster (a reader per partition there).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisTarget } from '../src/bus/redis/connection.js';
import { RedisStreamsBus } from '../src/bus/redis-streams-bus.js';
import { seqsOf, startPipeline } from './pipeline-helpers.js';
import { RedisCluster } from './redis-cluster.js';
import { RedisServer } from './redis-server.js';
import { holdsWithin as until } from './helpers.js';

/** The reader's pace: far longer than any wait below, so a read on the pace cannot pass for a nudged one. */
const PACE_MS = 4000;

let redis: RedisServer;
let cluster: RedisCluster;
beforeAll(async () => {
  [redis, cluster] = await Promise.all([RedisServer.launch(), RedisCluster.launch()]);
}, 30_000);
afterAll(async () => {
  await Promise.all([redis?.close(), cluster?.close()]);
});

let n = 0;
async function worker(target: RedisTarget, prefix: string) {
  const bus = new RedisStreamsBus({
    target,
    prefix,
    history: 100,
    workerId: `n${++n}`,
    heartbeatMs: 1000,
    reconnectMaxMs: 200,
    commandTimeoutMs: 1000,
    readPaceMs: () => PACE_MS,
  });
  const { pipeline, outboxes, published } = await startPipeline(bus, { deliverReads: true });
  /** Queues one message and runs the tick that appends it. */
  const post = async (room: string, kind: 'chat' | 'system', b: string) => {
    const p = { msg: { u: 'u', k: kind, b, t: Date.now() }, reply: () => {} };
    if (kind === 'system') outboxes.addHigh(room, p);
    else outboxes.addNormal(room, p);
    pipeline.tick();
    await pipeline.settled();
  };
  return { bus, pipeline, seqs: () => seqsOf(published), post };
}

describe('the nudge of a high-priority append', () => {
  it.each([
    ['one Redis', () => ({ url: redis.url })],
    ['a Redis Cluster', () => ({ cluster: cluster.nodes })],
  ] as Array<[string, () => RedisTarget]>)('on %s: brings a paced reader to read at once; chat still waits for the pace', async (_on, target) => {
    const prefix = `nudge${process.pid}x${++n}`;
    const a = await worker(target(), prefix);
    const b = await worker(target(), prefix);
    const room = 'r-nudge';
    try {
      a.pipeline.followed(room, await a.bus.follow(room));
      b.pipeline.followed(room, await b.bus.follow(room));
      // B's reader is blocked and idle: the first entry wakes it, and its pace starts.
      await a.post(room, 'chat', 'one');
      expect(await until(() => b.seqs().includes(1), 2000)).toBe(true);
      // Chat: B reads it on its pace, not now.
      await a.post(room, 'chat', 'two');
      expect(await until(() => b.seqs().includes(2), 1000)).toBe(false);
      // A system message: B reads at once, in log order.
      const posted = Date.now();
      await a.post(room, 'system', 'three');
      expect(await until(() => b.seqs().includes(3), 1500)).toBe(true);
      expect(Date.now() - posted).toBeLessThan(1500);
      expect(b.seqs()).toEqual([1, 2, 3]);
    } finally {
      await a.bus.close();
      await b.bus.close();
    }
  });
});
