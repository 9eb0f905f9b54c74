// PROTOCOL §3/§4: every client op and its reply, with `ref` echoed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { startTestNode } from './helpers.js';
import { closeAll, expectNone, member, members, request, uniq, user, waitUntil } from './ws-helpers.js';

describe('client ops', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20 });
  });
  afterAll(() => node.stop());

  it('join → joined {ref, room, epoch (string), seq, members}', async () => {
    const room = uniq('join');
    const a = await user(node, uniq('a'));
    a.send({ op: 'join', room, ref: 1 });
    const j = await a.reply(1);
    expect(j).toMatchObject({ op: 'joined', ref: 1, room, seq: 0, members: 1 });
    expect(typeof j.epoch).toBe('string');
    expect((j.epoch as string).length).toBeGreaterThan(0);
    const b = await user(node, uniq('b'));
    b.send({ op: 'join', room, ref: 2 });
    expect(await b.reply(2)).toMatchObject({ op: 'joined', ref: 2, room, epoch: j.epoch, members: 2 });
    // seq is the last seq in the room's log.
    const ack = await request(a, { op: 'send', room, kind: 'chat', body: 'x' });
    const c = await user(node, uniq('c'));
    const j3 = await request(c, { op: 'join', room });
    expect(j3.seq).toBe(ack.seq);
    await closeAll(a, b, c);
  });

  it('joining the same room twice is harmless: one stream, no duplicates', async () => {
    const room = uniq('twice');
    const { c: a } = await member(node, uniq('a'), room);
    expect(await request(a, { op: 'join', room })).toMatchObject({ op: 'joined', room, members: 1 });
    await request(a, { op: 'send', room, kind: 'chat', body: 'once' });
    await a.op('batch');
    await expectNone(a, (f) => f.op === 'batch', 150);
    expect(a.batches(room)).toHaveLength(1);
    await closeAll(a);
  });

  it('leave → left {ref, room}; no batches after it', async () => {
    const room = uniq('leave');
    const { c: a } = await member(node, uniq('a'), room);
    const { c: b } = await member(node, uniq('b'), room);
    a.send({ op: 'leave', room, ref: 9 });
    expect(await a.reply(9)).toEqual({ op: 'left', ref: 9, room });
    const n = a.frames.length;
    await request(b, { op: 'send', room, kind: 'chat', body: 'after leave' });
    await b.op('batch');
    await expectNone(a, (f) => f.op === 'batch', 100);
    expect(a.frames.slice(n).filter((f) => f.op === 'batch')).toEqual([]);
    await closeAll(a, b);
  });

  it('send chat → ack {ref, shown:true, seq} and one batch with the message to every member (sender included)', async () => {
    const room = uniq('chat');
    const { c: a } = await member(node, uniq('alice'), room, { name: 'Alice' });
    const { c: b } = await member(node, uniq('bob'), room);
    const before = Date.now();
    a.send({ op: 'send', room, kind: 'chat', body: 'héllo 👋', ref: 5 });
    const ack = await a.reply(5);
    expect(ack).toEqual({ op: 'ack', ref: 5, shown: true, seq: expect.any(Number) });
    for (const c of [a, b]) {
      const batch = await c.op('batch');
      expect(batch).toMatchObject({ op: 'batch', room, epoch: expect.any(String) });
      expect(batch.from as number).toBeLessThanOrEqual(ack.seq as number);
      expect(batch.to as number).toBeGreaterThanOrEqual(ack.seq as number);
      expect(batch.likes).toBeUndefined();
      const msgs = batch.msgs as Array<Record<string, unknown>>;
      expect(msgs).toHaveLength(1);
      expect(msgs[0]).toMatchObject({ u: a.frames[0]!.uid, n: 'Alice', k: 'chat', b: 'héllo 👋' });
      expect(msgs[0]!.t as number).toBeGreaterThanOrEqual(before - 5);
      expect(msgs[0]!.t as number).toBeLessThanOrEqual(Date.now() + 5);
    }
    // Without a name claim, `n` is absent.
    await request(b, { op: 'send', room, kind: 'chat', body: 'anon' });
    const anon = await a.waitFor((f) => f.op === 'batch' && (f.msgs as Array<{ b: string }>)[0]?.b === 'anon');
    expect((anon.msgs as Array<Record<string, unknown>>)[0]!.n).toBeUndefined();
    await closeAll(a, b);
  });

  it('send like → ack with seq; likes are summed into batch.likes, never sent as messages', async () => {
    const room = uniq('likes');
    const { c: obs } = await member(node, uniq('obs'), room);
    const likers = await members(node, 3, 'liker', room);
    const acks = await Promise.all(
      likers.flatMap(({ c }) => [request(c, { op: 'send', room, kind: 'like' }), request(c, { op: 'send', room, kind: 'like' })]),
    );
    for (const ack of acks) expect(ack).toMatchObject({ op: 'ack', shown: true, seq: expect.any(Number) });
    const maxSeq = Math.max(...acks.map((a) => a.seq as number));
    await waitUntil(() => obs.batches(room).some((b) => (b.to as number) >= maxSeq), 3000, 'like batches');
    const batches = obs.batches(room);
    expect(batches.reduce((s, b) => s + ((b.likes as number | undefined) ?? 0), 0)).toBe(6);
    expect(batches.flatMap((b) => b.msgs as unknown[])).toEqual([]);
    await closeAll(obs, ...likers.map((l) => l.c));
  });

  it('ping → pong with the server time, ref echoed', async () => {
    const a = await user(node, uniq('pinger'));
    const before = Date.now();
    a.send({ op: 'ping', ref: 123 });
    const pong = await a.reply(123);
    expect(pong).toEqual({ op: 'pong', ref: 123, ts: expect.any(Number) });
    expect(pong.ts as number).toBeGreaterThanOrEqual(before - 5);
    expect(pong.ts as number).toBeLessThanOrEqual(Date.now() + 5);
    a.send({ op: 'ping' });
    expect(await a.waitFor((f) => f.op === 'pong' && f.ref === undefined)).toMatchObject({ op: 'pong' });
    await closeAll(a);
  });

  it('ref is echoed on ack, joined, left, error and pong (0 and large values too)', async () => {
    const room = uniq('refs');
    const a = await user(node, uniq('refs'));
    for (const ref of [0, 100, 2 ** 32 + 7]) {
      a.send({ op: 'join', room, ref });
      expect(await a.reply(ref)).toMatchObject({ op: 'joined', ref });
      a.send({ op: 'send', room, kind: 'like', ref: ref + 1 });
      expect(await a.reply(ref + 1)).toMatchObject({ op: 'ack', ref: ref + 1 });
      a.send({ op: 'leave', room, ref: ref + 2 });
      expect(await a.reply(ref + 2)).toMatchObject({ op: 'left', ref: ref + 2 });
      a.send({ op: 'leave', room, ref: ref + 3 });
      expect(await a.reply(ref + 3)).toMatchObject({ op: 'error', code: 'NOT_JOINED', ref: ref + 3 });
      a.send({ op: 'ping', ref: ref + 4 });
      expect(await a.reply(ref + 4)).toMatchObject({ op: 'pong', ref: ref + 4 });
      a.send({ op: 'frobnicate', ref: ref + 5 });
      expect(await a.reply(ref + 5)).toMatchObject({ op: 'error', code: 'UNKNOWN_OP', ref: ref + 5 });
    }
    await closeAll(a);
  });

  it('one connection can be in several rooms and gets each room’s batches', async () => {
    const r1 = uniq('multi1');
    const r2 = uniq('multi2');
    const { c: a } = await member(node, uniq('a'), r1);
    expect(await request(a, { op: 'join', room: r2 })).toMatchObject({ op: 'joined', room: r2 });
    const { c: b } = await member(node, uniq('b'), r1);
    expect(await request(b, { op: 'join', room: r2 })).toMatchObject({ op: 'joined' });
    await request(b, { op: 'send', room: r1, kind: 'chat', body: 'in r1' });
    await request(b, { op: 'send', room: r2, kind: 'chat', body: 'in r2' });
    const one = await a.op('batch', (f) => f.room === r1);
    const two = await a.op('batch', (f) => f.room === r2);
    expect((one.msgs as Array<{ b: string }>)[0]!.b).toBe('in r1');
    expect((two.msgs as Array<{ b: string }>)[0]!.b).toBe('in r2');
    await closeAll(a, b);
  });
});
