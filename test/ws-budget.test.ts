// PROTOCOL §4 "Per-room budget, priorities and aggregation": chat over the room's budget is
// sampled out fairly across senders (acked shown:false); likes are summed into batches.
import { decode } from '@msgpack/msgpack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { NO_FRAME_BUDGET, sleep, startTestNode, type Client, type Frame } from './helpers.js';
import { closeAll, member, members, nextRef, request, uniq, waitUntil } from './ws-helpers.js';

const acksOf = (c: Client) => c.frames.filter((f) => f.op === 'ack');

/** Arrival time and chat count of every batch the client receives from now on. */
function recordBatches(c: Client, room: string): Array<{ at: number; chats: number; likes: number; to: number }> {
  const out: Array<{ at: number; chats: number; likes: number; to: number }> = [];
  c.ws.on('message', (data: Buffer) => {
    const f = decode(data) as Frame;
    if (f.op !== 'batch' || f.room !== room) return;
    const msgs = f.msgs as Array<{ k: string }>;
    out.push({ at: Date.now(), chats: msgs.filter((m) => m.k === 'chat').length, likes: (f.likes as number | undefined) ?? 0, to: f.to as number });
  });
  return out;
}

describe('chat budget under a flood', () => {
  const BUDGET = 10;
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ ...NO_FRAME_BUDGET, tickMs: 20, roomChatBudget: BUDGET, chatRate: 10_000, chatBurst: 10_000 });
  });
  afterAll(() => node.stop());

  it('delivers at most the budget per second (one second banked), samples fairly, acks the rest shown:false', async () => {
    const room = uniq('flood');
    const { c: observer } = await member(node, uniq('observer'), room);
    const arrivals = recordBatches(observer, room);
    const senders = await members(node, 30, 's', room);
    const { c: flooder } = await member(node, uniq('flooder'), room);
    const all = [...senders.map((s) => s.c), flooder];
    const sent = new Map<Client, number>(all.map((c) => [c, 0]));
    const send = (c: Client) => {
      c.send({ op: 'send', room, kind: 'chat', body: `from ${c.frames[0]!.uid as string}`, ref: nextRef() });
      sent.set(c, sent.get(c)! + 1);
    };
    const start = Date.now();
    while (Date.now() - start < 2000) {
      for (let i = 0; i < 30; i++) send(flooder); // one flooder sends as much as the rest of the room, first
      for (const { c } of senders) send(c);
      await sleep(40);
    }
    await waitUntil(() => all.every((c) => acksOf(c).length === sent.get(c)), 10_000, 'every ack');
    const elapsedSec = (Date.now() - start) / 1000;

    const acks = all.flatMap(acksOf);
    const shown = acks.filter((a) => a.shown === true);
    const hidden = acks.filter((a) => a.shown === false);
    expect(all.flatMap((c) => c.frames.filter((f) => f.op === 'error'))).toEqual([]);
    expect(hidden.length).toBeGreaterThan(0);
    for (const a of hidden) expect('seq' in a).toBe(false);
    for (const a of shown) expect(typeof a.seq).toBe('number');

    // Budget: BUDGET/s plus at most one banked second (generous slack for timer jitter).
    expect(shown.length).toBeLessThanOrEqual(BUDGET * (elapsedSec + 1) + 3);
    expect(shown.length).toBeGreaterThanOrEqual(BUDGET * 1.5); // the budget is actually used

    // What the observer got is exactly what was acked shown:true.
    const maxSeq = Math.max(...shown.map((a) => a.seq as number));
    await waitUntil(() => arrivals.some((b) => b.to >= maxSeq), 5000, 'last batch');
    const delivered = arrivals.reduce((s, b) => s + b.chats, 0);
    expect(delivered).toBe(shown.length);
    // No one-second window holds more than a banked second plus a second's refill.
    for (const b of arrivals) {
      const inWindow = arrivals.filter((x) => x.at >= b.at && x.at < b.at + 1000).reduce((s, x) => s + x.chats, 0);
      expect(inWindow).toBeLessThanOrEqual(2 * BUDGET + 3);
    }

    // Fairness: the flooder sent half of all messages (each round's first) but gets about one pick in 31.
    const flooderShown = acksOf(flooder).filter((a) => a.shown).length;
    expect(flooderShown).toBeLessThanOrEqual(Math.ceil(shown.length * 0.2));
    const sendersShown = senders.filter(({ c }) => acksOf(c).some((a) => a.shown)).length;
    expect(sendersShown).toBeGreaterThanOrEqual(8);
    await closeAll(observer, ...all);
  });
});

describe('fair sampling within one tick', () => {
  const BUDGET = 30;
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 300, roomChatBudget: BUDGET, chatRate: 1000, chatBurst: 1000 });
  });
  afterAll(() => node.stop());

  it('with a budget of 30 and 30 senders sending 5 each at once, every sender gets one shown', async () => {
    const room = uniq('fair');
    const { c: clock } = await member(node, uniq('clock'), room);
    const senders = await members(node, 30, 'f', room);
    // Start right after a tick, so that all 150 messages land in the same one.
    await request(clock, { op: 'send', room, kind: 'like' });
    await clock.op('batch');
    for (const { c } of senders) for (let i = 0; i < 5; i++) c.send({ op: 'send', room, kind: 'chat', body: `m${i}`, ref: nextRef() });
    await waitUntil(() => senders.every(({ c }) => acksOf(c).length === 5), 5000, 'acks');
    const shownPer = senders.map(({ c }) => acksOf(c).filter((a) => a.shown).length);
    const total = shownPer.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThanOrEqual(BUDGET - 1);
    expect(total).toBeLessThanOrEqual(BUDGET + 12); // a refill if the burst straddled two ticks
    expect(Math.min(...shownPer), `shown per sender: ${shownPer.join(',')}`).toBeGreaterThanOrEqual(1);
    expect(Math.max(...shownPer), `shown per sender: ${shownPer.join(',')}`).toBeLessThanOrEqual(2);
    await closeAll(clock, ...senders.map((s) => s.c));
  });
});

describe('likes', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20 }); // default like limit: 10/s
  });
  afterAll(() => node.stop());

  it('likes from many users are summed: Σ batch.likes == acked likes, far fewer batches than likes', async () => {
    const room = uniq('likes');
    const { c: observer } = await member(node, uniq('observer'), room);
    const likers = await members(node, 20, 'l', room);
    for (let round = 0; round < 10; round++) {
      for (const { c } of likers) c.send({ op: 'send', room, kind: 'like', ref: nextRef() });
      await sleep(5);
    }
    await waitUntil(() => likers.every(({ c }) => acksOf(c).length === 10), 5000, 'like acks');
    const acks = likers.flatMap(({ c }) => acksOf(c));
    expect(acks.every((a) => a.shown === true && typeof a.seq === 'number')).toBe(true);
    const maxSeq = Math.max(...acks.map((a) => a.seq as number));
    await waitUntil(() => observer.batches(room).some((b) => (b.to as number) >= maxSeq), 3000, 'batches');
    const batches = observer.batches(room);
    expect(batches.reduce((s, b) => s + ((b.likes as number | undefined) ?? 0), 0)).toBe(acks.length);
    expect(acks.length).toBe(200);
    expect(batches.length).toBeLessThan(50);
    expect(batches.flatMap((b) => b.msgs as unknown[])).toEqual([]);
    await closeAll(observer, ...likers.map((l) => l.c));
  });

  it('likes do not use the chat budget', async () => {
    const n2 = await startTestNode({ tickMs: 20, roomChatBudget: 1, likeRate: 1000, likeBurst: 1000 });
    try {
      const room = uniq('likes-budget');
      const { c } = await member(n2, uniq('liker'), room);
      const replies = await Promise.all(Array.from({ length: 30 }, () => request(c, { op: 'send', room, kind: 'like' })));
      expect(replies.every((r) => r.op === 'ack' && r.shown === true)).toBe(true);
      await closeAll(c);
    } finally {
      await n2.stop();
    }
  });
});
