// A slow Redis round trip must not stretch the tick (issue 16): the tick stretches for the
// worker's own work (fan-out), while an append waits beside the next ticks. Real node, real
// Redis; the append is held up with CLIENT PAUSE WRITE, which stalls writes but not reads.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, joinedClient, SECRET, sleep, startTestNode, type Client, type Frame } from './helpers.js';
import { api, metric } from './api-helpers.js';
import { RedisServer } from './redis-server.js';

const TICK_MS = 20;
const PAUSE_MS = 700;

describe('a stalled append', () => {
  let redis: RedisServer;
  let node: RoomcastNode;
  let admin: Redis;
  let member: Client;
  beforeAll(async () => {
    redis = await RedisServer.launch();
    admin = new Redis(redis.url);
    node = await startTestNode({ apiKey: API_KEY, secret: SECRET, redis: redis.url, tickMs: TICK_MS, maxTickMs: 1000 });
    member = await joinedClient(node, 'viewer', 'slow');
  });
  afterAll(async () => {
    await member?.close();
    await node?.stop();
    admin?.disconnect();
    await redis?.close();
  });

  it('leaves the effective tick unstretched, and what waited is delivered in order afterwards', async () => {
    const post = (b: string) => api(node, 'POST', '/v1/rooms/slow/messages', { kind: 'system', body: b });
    expect((await post('before')).status).toBe(202);
    await admin.call('CLIENT', 'PAUSE', String(PAUSE_MS), 'WRITE');
    const started = Date.now();
    const stalled = [post('one'), post('two')];
    await sleep(TICK_MS * 5);
    const third = post('three');
    const answers = await Promise.all([...stalled, third]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(PAUSE_MS - 50); // the appends really waited
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202]);
    // Before the fix the tick's work included the round trip: 1.5 × 700 ms, capped at 1 s. A
    // loop shared with the rest of the suite stretches it a little on its own (118 ms seen).
    expect(await metric(node, 'roomcast_effective_tick_seconds')).toBeLessThan(0.3);
    const bodiesOf = (f: Frame) => ((f.msgs ?? []) as Array<{ b: unknown }>).map((m) => m.b);
    await member.waitFor((f) => f.op === 'batch' && bodiesOf(f).includes('three'));
    const bodies = member.batches('slow').flatMap(bodiesOf);
    const after = bodies.filter((b) => b !== 'before');
    expect([...after.slice(0, 2)].sort()).toEqual(['one', 'two']); // posted concurrently
    expect(after.slice(2)).toEqual(['three']);
  });
});
