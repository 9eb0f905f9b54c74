// An idle worker costs close to nothing: with members connected to a room on a real Redis bus
// and no traffic, no tick runs (roomcast_tick_duration_seconds_count stands still), and a
// message sent after the idle stretch is still acked and delivered within a tick or so.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, sleep, startTestNode } from './helpers.js';
import { closeAll, members, metric, request, uniq } from './ws-helpers.js';
import { RedisServer } from './redis-server.js';

let redis: RedisServer;
let node: RoomcastNode;
beforeAll(async () => {
  redis = await RedisServer.launch();
  node = await startTestNode({ tickMs: 20, redis: redis.url, apiKey: API_KEY });
});
afterAll(async () => {
  await node?.stop();
  await redis?.close();
});

const ticks = () => metric(node.port, 'roomcast_tick_duration_seconds_count');

describe('an idle worker', () => {
  it('runs no tick while nothing is sent, and delivers the first message after', async () => {
    const room = uniq('idle');
    const ms = await members(node, 5, 'idler', room);
    // traffic first: the ticker is awake and ticking
    expect(await request(ms[0]!.c, { op: 'send', room, kind: 'chat', body: 'before' })).toMatchObject({ op: 'ack', shown: true });
    await sleep(300); // its trailing empty tick puts the loop to sleep
    const before = await ticks();
    await sleep(1000);
    expect(await ticks()).toBe(before);

    const t0 = performance.now();
    const ack = await request(ms[1]!.c, { op: 'send', room, kind: 'chat', body: 'after idle' });
    expect(ack).toMatchObject({ op: 'ack', shown: true });
    for (const { c } of ms) await c.waitFor((f) => f.op === 'batch' && (f.msgs as Array<{ b: string }>).some((m) => m.b === 'after idle'));
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(await ticks()).toBeGreaterThan(before);

    // an API message after idle too
    await sleep(300);
    const res = await fetch(`http://127.0.0.1:${node.port}/v1/rooms/${room}/messages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ kind: 'system', body: 'api after idle' }),
    });
    expect(res.status).toBe(202);
    await ms[4]!.c.waitFor((f) => f.op === 'batch' && (f.msgs as Array<{ b: string }>).some((m) => m.b === 'api after idle'));
    await closeAll(...ms.map((m) => m.c));
  });
});
