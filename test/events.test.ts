// Business events (docs/protocol.md §8): batched, signed webhook POSTs and a Redis stream read
// with XREADGROUP; appends with room/seq/epoch/time, member churn summed per interval, room
// started/ended with the peak; retries in order, a bounded queue with counted loss, and a tick
// that never waits for any of it.
import { createHmac } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '../src/config/load.js';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, SECRET, startTestNode } from './helpers.js';
import { api, eventually, metric, postShown } from './api-helpers.js';
import { closeAll, member, request, uniq, waitUntil } from './ws-helpers.js';
import { EventsEndpoint } from './events-helpers.js';
import { RedisServer } from './redis-server.js';

const BASE = { apiKey: API_KEY, secret: SECRET, tickMs: 20, eventsFlushMs: 50 } as const;
const hmac = (key: string, body: string) => 'sha256=' + createHmac('sha256', key).update(body).digest('hex');

describe('events webhook', () => {
  let ep: EventsEndpoint;
  let node: RoomcastNode;
  beforeAll(async () => {
    ep = await EventsEndpoint.start();
    node = await startTestNode({ ...BASE, eventsUrl: ep.url });
  });
  afterAll(async () => {
    await node?.stop();
    await ep?.close();
  });

  it('reports a room from start to end: started, joins, appends, leaves, ended with the peak', async () => {
    const room = uniq('ev');
    const a = await member(node, 'alice', room);
    const b = await member(node, 'bob', room);
    const ack = await request(a.c, { op: 'send', room, kind: 'chat', body: 'hello' });
    expect(ack).toMatchObject({ op: 'ack', shown: true });
    const seq = await postShown(node, room, { kind: 'gift', body: { item: 'rose' }, uid: 'carol' });
    await closeAll(a.c, b.c);
    await waitUntil(() => ep.events(room).some((e) => e.type === 'room.ended'), 5000, 'room.ended');
    const evs = ep.events(room);
    const types = evs.map((e) => e.type);
    expect(types[0]).toBe('room.started');
    expect(types.at(-1)).toBe('room.ended');
    expect(evs[0]).toMatchObject({ cause: 'member', ts: expect.any(Number) });
    const appended = evs.filter((e) => e.type === 'message.appended');
    expect(appended.map((e) => e.seq)).toEqual([ack.seq, seq]);
    expect(appended[0]).toEqual({
      type: 'message.appended',
      room,
      epoch: a.joined.epoch,
      seq: ack.seq,
      ts: expect.any(Number),
      msgs: [{ u: 'alice', k: 'chat', b: 'hello', t: expect.any(Number) }],
      likes: 0,
    });
    expect(appended[1]!.msgs).toEqual([expect.objectContaining({ u: 'carol', k: 'gift', b: { item: 'rose' } })]);
    const churn = evs.filter((e) => e.type === 'members.changed');
    expect(churn.reduce((n, e) => n + (e.joined as number), 0)).toBe(2);
    expect(churn.reduce((n, e) => n + (e.left as number), 0)).toBe(2);
    expect(churn.flatMap((e) => (e.sample as { joined: string[] }).joined).sort()).toEqual(['alice', 'bob']);
    expect(evs.at(-1)).toMatchObject({ reason: 'empty', peak: 2, startedAt: evs[0]!.ts });
  });

  it('signs every batch with HMAC-SHA256 of the body under the API key', async () => {
    await waitUntil(() => ep.received.length > 0, 3000, 'a batch');
    for (const r of ep.received) {
      expect(r.signature).toBe(hmac(API_KEY, r.body));
      expect(r.batch).toMatchObject({ id: expect.any(String), node: expect.any(String), sentAt: expect.any(Number) });
    }
  });

  it('batches: many appends arrive in a few POSTs, never one call per message', async () => {
    const rooms = Array.from({ length: 40 }, () => uniq('many'));
    const before = ep.received.length;
    await Promise.all(rooms.map((room) => postShown(node, room, { kind: 'system', body: 'x' })));
    await waitUntil(() => rooms.every((room) => ep.events(room).some((e) => e.type === 'message.appended')), 5000, 'all appends');
    expect(ep.received.length - before).toBeLessThan(10);
    expect(await metric(node, 'roomcast_events_sent_total', { sink: 'http' })).toBeGreaterThanOrEqual(80);
  });
});

describe('delivery trouble', () => {
  let ep: EventsEndpoint;
  beforeAll(async () => {
    ep = await EventsEndpoint.start();
  });
  afterAll(() => ep?.close());

  it('retries a failed batch with backoff, then delivers everything in order (dedicated secret)', async () => {
    const node = await startTestNode({ ...BASE, eventsUrl: ep.url, eventsSecret: 'events-secret-0123456789', eventsBatch: 3 });
    try {
      const room = uniq('retry');
      ep.answer = 500;
      for (let i = 1; i <= 7; i++) await postShown(node, room, { kind: 'system', body: `m${i}` });
      await waitUntil(() => ep.received.filter((r) => r.status === 500).length >= 2, 5000, 'failed attempts');
      ep.answer = 204;
      await waitUntil(() => ep.events(room).filter((e) => e.type === 'message.appended').length === 7, 10_000, 'all delivered');
      const seqs = ep.events(room).filter((e) => e.type === 'message.appended').map((e) => e.seq as number);
      expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect(ep.events(room)[0]).toMatchObject({ type: 'room.started', cause: 'message' });
      // The failed batch was sent again as it was (same id), before anything after it.
      const failedIds = new Set(ep.received.filter((r) => r.status === 500).map((r) => r.batch.id));
      expect(failedIds.size).toBe(1);
      expect(ep.received.find((r) => r.status === 204)!.batch.id).toBe([...failedIds][0]);
      for (const r of ep.received) expect(r.signature).toBe(hmac('events-secret-0123456789', r.body));
      expect(await metric(node, 'roomcast_events_failures_total', { sink: 'http' })).toBeGreaterThanOrEqual(2);
    } finally {
      await node.stop();
    }
  });

  it('never holds the tick: with a webhook that never answers, chat is acked and delivered at once', async () => {
    ep.answer = 'hang';
    const node = await startTestNode({ ...BASE, eventsUrl: ep.url, eventsTimeoutMs: 60_000, chatRate: 100, chatBurst: 100 });
    try {
      const room = uniq('hang');
      const m = await member(node, 'dana', room);
      await postShown(node, room, { kind: 'system', body: 'first' }); // the webhook now hangs on its batch
      await new Promise((r) => setTimeout(r, 200));
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        const ack = await request(m.c, { op: 'send', room, kind: 'chat', body: `c${i}` });
        expect(ack).toMatchObject({ op: 'ack', shown: true });
        expect(Date.now() - t0).toBeLessThan(1000);
      }
      await waitUntil(() => m.c.batches(room).some((b) => (b.msgs as Array<{ b: string }>).some((x) => x.b === 'c4')), 2000, 'delivered');
      expect(await metric(node, 'roomcast_events_queued', { sink: 'http' })).toBeGreaterThan(0);
      await closeAll(m.c);
    } finally {
      ep.answer = 204;
      await node.stop();
    }
  });

  it('counts the events it drops over the queue bound while the endpoint is down', async () => {
    const down = await EventsEndpoint.start();
    const url = down.url;
    await down.close(); // nothing listens there now
    const node = await startTestNode({ ...BASE, eventsUrl: url, eventsQueue: 100 });
    try {
      const rooms = Array.from({ length: 150 }, () => uniq('drop'));
      await Promise.all(rooms.map((room) => postShown(node, room, { kind: 'system', body: 'x' })));
      // 150 rooms started + 150 appends, at most 100 held (plus one batch in flight).
      await eventually(async () => (await metric(node, 'roomcast_events_dropped_total', { sink: 'http' })) >= 150, 5000, 'drops counted');
      expect(await metric(node, 'roomcast_events_failures_total', { sink: 'http' })).toBeGreaterThan(0);
    } finally {
      await node.stop();
    }
  });
});

describe('events stream on Redis', () => {
  let redis: RedisServer;
  let node: RoomcastNode;
  let r: Redis;
  const key = `events${process.pid}`;
  beforeAll(async () => {
    redis = await RedisServer.launch();
    r = new Redis(redis.url);
    await r.xgroup('CREATE', key, 'archive', '$', 'MKSTREAM');
    node = await startTestNode({ ...BASE, redis: redis.url, redisPrefix: `ev${process.pid}`, eventsStream: key, eventsStreamTtl: 3600, eventsStreamMaxLen: 100 });
  });
  afterAll(async () => {
    await node?.stop();
    r?.disconnect();
    await redis?.close();
  });

  it('a backend reads every event with XREADGROUP, one entry per event; the stream has a TTL and a bound', async () => {
    const room = uniq('stream');
    const seqs = [];
    for (let i = 0; i < 3; i++) seqs.push(await postShown(node, room, { kind: 'system', body: `s${i}` }));
    const got: Array<Record<string, unknown>> = [];
    await eventually(
      async () => {
        const res = (await r.xreadgroup('GROUP', 'archive', 'c1', 'COUNT', 100, 'STREAMS', key, '>')) as Array<[string, Array<[string, string[]]>]> | null;
        for (const [, entries] of res ?? []) {
          for (const [id, fields] of entries) {
            const f = Object.fromEntries(fields.reduce<Array<[string, string]>>((acc, v, i) => (i % 2 ? acc : [...acc, [v, fields[i + 1]!]]), []));
            expect(f.type).toBe(JSON.parse(f.event!).type);
            got.push({ ...JSON.parse(f.event!), room: f.room });
            await r.xack(key, 'archive', id);
          }
        }
        return got.filter((e) => e.room === room && e.type === 'message.appended').length === 3;
      },
      5000,
      'events in the stream',
    );
    expect(got.filter((e) => e.room === room).map((e) => e.type)).toEqual(['room.started', 'message.appended', 'message.appended', 'message.appended']);
    expect(got.filter((e) => e.type === 'message.appended').map((e) => e.seq)).toEqual(seqs);
    const ttl = await r.ttl(key);
    expect(ttl).toBeGreaterThan(3000);
    expect(ttl).toBeLessThanOrEqual(3600);
    // MAXLEN ~ 100: far more events than that leave roughly 100 (Redis trims whole nodes).
    await Promise.all(Array.from({ length: 300 }, () => postShown(node, uniq('fill'), { kind: 'system', body: 'f' })));
    await eventually(async () => (await metric(node, 'roomcast_events_sent_total', { sink: 'stream' })) >= 600, 5000, 'sent');
    expect(await r.xlen(key)).toBeLessThan(300);
  });
});

describe('events configuration and metrics', () => {
  it('every events series exists at 0 on a node without events', async () => {
    const node = await startTestNode({ apiKey: API_KEY, secret: SECRET });
    try {
      const text = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
      for (const name of ['roomcast_events_sent_total', 'roomcast_events_dropped_total', 'roomcast_events_failures_total', 'roomcast_events_queued']) {
        for (const sink of ['http', 'stream']) expect(text).toContain(`${name}{sink="${sink}"} 0`);
      }
      expect((await api(node, 'GET', '/v1/rooms?top=1')).status).toBe(200);
    } finally {
      await node.stop();
    }
  });

  it('refuses a stream without Redis, and a webhook with nothing to sign with', () => {
    expect(() => buildConfig({ eventsStream: 'ev' })).toThrow(/events-stream needs --redis/);
    expect(() => buildConfig({ secret: SECRET, eventsUrl: 'http://127.0.0.1:1/' })).toThrow(/events-secret or --api-key/);
    expect(buildConfig({ secret: SECRET, eventsUrl: 'http://127.0.0.1:1/', eventsSecret: 'events-secret-0123456789' }).eventsUrl).toBe('http://127.0.0.1:1/');
    expect(buildConfig({ eventsUrl: 'http://127.0.0.1:1/' }).eventsUrl).toBe('http://127.0.0.1:1/'); // dev mode signs with "dev"
  });
});
