// GET /v1/rooms/:room/messages (PROTOCOL §9) on the MemoryBus and on a real Redis: oldest
// first, each message with its log entry's seq, paging with since/limit/to, validation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, SECRET, joinedClient, startTestNode } from './helpers.js';
import { api, expectError, postShown, request } from './api-helpers.js';
import { RedisServer } from './redis-server.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await RedisServer.launch();
});
afterAll(async () => {
  await redis?.close();
});

const BASE = { apiKey: API_KEY, secret: SECRET, tickMs: 20 } as const;

describe.each(['memory', 'redis'] as const)('history API on the %s bus', (kind) => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode(kind === 'redis' ? { ...BASE, redis: redis.url, redisPrefix: `hist${process.pid}` } : BASE);
  });
  afterAll(() => node?.stop());

  const get = (room: string, q = '') => api(node, 'GET', `/v1/rooms/${room}/messages${q}`);

  it('answers a room with no log with an empty page', async () => {
    const res = await get('hist-empty');
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ room: 'hist-empty', epoch: expect.any(String), seq: 0, msgs: [], to: 0 });
  });

  it('lists the log oldest first, each message with the seq of its entry', async () => {
    const seqs: number[] = [];
    for (const b of ['one', 'two', 'three']) seqs.push(await postShown(node, 'hist-a', { kind: 'system', body: b, x: { i: b } }));
    // Two at once usually share one tick's entry: both carry that entry's seq either way.
    const [s4, s5] = await Promise.all([postShown(node, 'hist-a', { kind: 'gift', body: 'four', uid: 'u1', name: 'U' }), postShown(node, 'hist-a', { kind: 'system', body: 'five' })]);
    const res = await get('hist-a');
    expect(res.status, res.text).toBe(200);
    expect(res.body.room).toBe('hist-a');
    expect(res.body.seq).toBe(Math.max(s4!, s5!));
    expect(res.body.to).toBe(res.body.seq);
    const msgs = res.body.msgs as Array<{ seq: number; b: string; u: string; k: string; t: number }>;
    expect(msgs.map((m) => m.b).slice(0, 3)).toEqual(['one', 'two', 'three']);
    expect(msgs.slice(0, 3).map((m) => m.seq)).toEqual(seqs);
    expect(msgs[0]).toEqual({ seq: seqs[0], u: 'system', k: 'system', b: 'one', t: expect.any(Number), x: { i: 'one' } });
    expect(msgs.find((m) => m.b === 'four')).toMatchObject({ seq: s4, u: 'u1', n: 'U', k: 'gift' });
    expect(msgs.find((m) => m.b === 'five')).toMatchObject({ seq: s5 });
    expect(msgs.map((m) => m.seq)).toEqual([...msgs.map((m) => m.seq)].sort((a, b) => a - b));
  });

  it('pages with since and limit (in log entries) until to reaches seq', async () => {
    for (let i = 1; i <= 7; i++) await postShown(node, 'hist-page', { kind: 'system', body: `m${i}` });
    const bodies: string[] = [];
    let since = 0;
    let pages = 0;
    for (;;) {
      const res = await get('hist-page', `?since=${since}&limit=3`);
      expect(res.status, res.text).toBe(200);
      expect(res.body.msgs.length).toBeLessThanOrEqual(3);
      bodies.push(...(res.body.msgs as Array<{ b: string }>).map((m) => m.b));
      pages++;
      if (res.body.to === res.body.seq) break;
      since = res.body.to;
    }
    expect(bodies).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
    expect(pages).toBe(3);
    const tail = await get('hist-page', '?since=5');
    expect((tail.body.msgs as Array<{ b: string; seq: number }>).map((m) => [m.b, m.seq])).toEqual([['m6', 6], ['m7', 7]]);
    const beyond = await get('hist-page', '?since=99');
    expect(beyond.body).toMatchObject({ seq: 7, to: 7, msgs: [] });
  });

  it('skips likes (they are counts) but moves to past their entries', async () => {
    await postShown(node, 'hist-likes', { kind: 'system', body: 'before' });
    const c = await joinedClient(node, 'liker', 'hist-likes');
    const ack = await request(c, { op: 'send', room: 'hist-likes', kind: 'like' });
    expect(ack).toMatchObject({ op: 'ack', shown: true });
    await c.close();
    const res = await get('hist-likes');
    expect(res.body.msgs.map((m: { b: string }) => m.b)).toEqual(['before']);
    expect(res.body).toMatchObject({ seq: ack.seq, to: ack.seq });
  });

  it.each([
    ['since negative', '?since=-1'],
    ['since not a number', '?since=abc'],
    ['since fractional', '?since=1.5'],
    ['limit 0', '?limit=0'],
    ['limit over 1000', '?limit=1001'],
    ['limit not a number', '?limit=ten'],
  ])('%s -> 400 BAD_REQUEST', async (what, q) => {
    expectError(await get('hist-a', q), 400, 'BAD_REQUEST', what);
  });

  it('accepts limit 1000, refuses a bad room id and a missing key', async () => {
    expect((await get('hist-a', '?limit=1000')).status).toBe(200);
    expectError(await get('bad%20room'), 400, 'BAD_ROOM');
    expectError(await api(node, 'GET', '/v1/rooms/hist-a/messages', undefined, { key: null }), 401, 'UNAUTHORIZED');
  });
});
