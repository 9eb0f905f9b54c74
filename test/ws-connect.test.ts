// PROTOCOL §1: connecting — welcome, joining from the query string, recovery from the query.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { connect, startTestNode, token } from './helpers.js';
import { closeAll, gaps, member, request, uniq, user, waitUntil } from './ws-helpers.js';

describe('connecting', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, nodeId: 'node-a', idleTimeoutSec: 30, chatRate: 100, chatBurst: 100 });
  });
  afterAll(() => node.stop());

  it('sends welcome first, with sid, uid, node and hb', async () => {
    const uid = uniq('welcome');
    const c = await user(node, uid);
    const w = c.frames[0]!;
    expect(w).toMatchObject({ op: 'welcome', uid, node: 'node-a', hb: 30 });
    expect(typeof w.sid).toBe('string');
    expect((w.sid as string).length).toBeGreaterThan(0);
    const d = await user(node, uid);
    expect(d.frames[0]!.sid).not.toBe(w.sid); // one sid per connection
    await closeAll(c, d);
  });

  it('welcome comes first even when the query joins a room; joined follows', async () => {
    const room = uniq('q-room');
    const uid = uniq('q');
    const t = await token(node, { uid });
    const c = await connect(node.port, { token: t, room });
    expect(c.frames[0]!.op).toBe('welcome');
    expect(c.frames[1]).toMatchObject({ op: 'joined', room, seq: 0, members: 1 });
    expect(typeof c.frames[1]!.epoch).toBe('string');
    expect(c.frames[1]!.recovered).toBeUndefined(); // no since given
    // It is a real member: it receives the room's batches.
    const { c: b } = await member(node, uniq('q2'), room);
    const ack = await request(b, { op: 'send', room, kind: 'chat', body: 'via query' });
    expect(ack).toMatchObject({ op: 'ack', shown: true });
    const batch = await c.op('batch', (f) => f.room === room);
    expect(batch.msgs).toEqual([expect.objectContaining({ b: 'via query' })]);
    // ... and counts as joined for ops.
    expect(await request(c, { op: 'send', room, kind: 'chat', body: 'me too' })).toMatchObject({ op: 'ack', shown: true });
    expect(await request(c, { op: 'leave', room })).toMatchObject({ op: 'left', room });
    await closeAll(b, c);
  });

  it('a query room that is not a valid room id gets BAD_ROOM, and the socket stays usable', async () => {
    for (const room of ['bad room', 'x'.repeat(65), '']) {
      const c = await user(node, uniq('badq'), { room });
      const err = await c.op('error');
      expect(err.code).toBe('BAD_ROOM');
      expect(c.frames.some((f) => f.op === 'joined')).toBe(false);
      expect(await request(c, { op: 'ping' })).toMatchObject({ op: 'pong' });
      await closeAll(c);
    }
  });

  it('a query since that is not an unsigned integer gets BAD_FRAME', async () => {
    for (const since of ['abc', '-1', '1.5']) {
      const t = await token(node, { uid: uniq('badsince') });
      const c = await connect(node.port, { token: t, room: uniq('r'), since: since as unknown as number });
      const err = await c.op('error');
      expect(err.code).toBe('BAD_FRAME');
      await closeAll(c);
    }
  });

  it('since/epoch in the query recover what was missed: replayed before live batches', async () => {
    const room = uniq('recover-q');
    const uid = uniq('rq');
    const { c: first, joined } = await member(node, uid, room);
    await closeAll(first);
    const { c: talker } = await member(node, uniq('talker'), room);
    const acks = [];
    for (let i = 0; i < 3; i++) {
      acks.push(await request(talker, { op: 'send', room, kind: 'chat', body: `missed ${i}` }));
    }
    const lastAck = acks.at(-1)!.seq as number;
    const t = await token(node, { uid });
    const c = await connect(node.port, { token: t, room, since: joined.seq as number, epoch: joined.epoch as string });
    const j = c.frames[1]!;
    expect(j).toMatchObject({ op: 'joined', room, epoch: joined.epoch, recovered: true });
    expect(j.seq).toBeGreaterThanOrEqual(lastAck);
    await waitUntil(() => c.batches(room).some((b) => (b.to as number) >= (j.seq as number)), 3000, 'replay');
    const replay = c.batches(room);
    expect(gaps(replay, joined.seq as number)).toEqual([]);
    expect(replay[0]!.from).toBe((joined.seq as number) + 1);
    const bodies = replay.flatMap((b) => (b.msgs as Array<{ b: string }>).map((m) => m.b));
    expect(bodies).toEqual(['missed 0', 'missed 1', 'missed 2']);
    // Live batches continue the same stream without a gap.
    await request(talker, { op: 'send', room, kind: 'chat', body: 'live' });
    await c.waitFor((f) => f.op === 'batch' && (f.msgs as Array<{ b: string }>).some((m) => m.b === 'live'));
    expect(gaps(c.batches(room), joined.seq as number)).toEqual([]);
    await closeAll(c, talker);
  });

  it('since with another epoch in the query: recovered false and no replay', async () => {
    const room = uniq('recover-bad-epoch');
    const { c: talker, joined } = await member(node, uniq('talker'), room);
    await request(talker, { op: 'send', room, kind: 'chat', body: 'one' });
    await request(talker, { op: 'send', room, kind: 'chat', body: 'two' });
    const t = await token(node, { uid: uniq('rq') });
    const c = await connect(node.port, { token: t, room, since: joined.seq as number, epoch: 'not-the-epoch' });
    const j = c.frames[1]!;
    expect(j).toMatchObject({ op: 'joined', room, recovered: false });
    await request(talker, { op: 'send', room, kind: 'chat', body: 'three' });
    const live = await c.op('batch');
    expect(live.from).toBe((j.seq as number) + 1); // starts from seq: nothing replayed
    await closeAll(c, talker);
  });
});

describe('a burst of concurrent connections', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, connectRate: 0 });
  });
  afterAll(() => node.stop());

  // Regression: with the token checked asynchronously and res.upgrade() inside res.cork(),
  // uWS intermittently closed a freshly opened socket right after `welcome` (1006, no close
  // frame) when many clients connected at once (uNetworking/uWebSockets#1928).
  it('every socket of a burst stays open after welcome and can join', async () => {
    const room = uniq('burst');
    const early: string[] = [];
    for (let round = 0; round < 3; round++) {
      const clients = await Promise.all(
        Array.from({ length: 60 }, async (_, i) => {
          const c = await user(node, uniq(`burst${round}-${i}`)).catch((err: Error) => {
            early.push(`connect failed: ${err.message}`);
            return undefined;
          });
          if (c) await request(c, { op: 'join', room }).catch((err: Error) => early.push(err.message.slice(0, 200)));
          return c;
        }),
      );
      for (const c of clients) if (c && c.closeCode !== undefined) early.push(`${c.frames[0]?.uid as string} closed ${c.closeCode}`);
      await closeAll(...clients);
    }
    expect(early).toEqual([]);
  });
});
