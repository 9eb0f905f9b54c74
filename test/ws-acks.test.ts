// Cheaper acks (docs/protocol.md §8): a like without `ref` is not acked but still counted into
// the room's batch, refusals of it still arrive (without ref), and acks go out with the batch
// frame, in its socket write.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { metricValue, sleep, startTestNode, type Frame } from './helpers.js';
import { closeAll, member, nextRef, request, uniq, user } from './ws-helpers.js';

/** A batch frame whose seq range covers `seq`. */
const holds = (f: Frame, seq: unknown) => f.op === 'batch' && (f.from as number) <= (seq as number) && (seq as number) <= (f.to as number);

async function metrics(node: RoomcastNode): Promise<string> {
  return (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
}

describe('acks', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 100 });
  });
  afterAll(() => node.stop());

  it('a like without ref is counted into the batch and never acked; with ref it is acked', async () => {
    const room = uniq('likes');
    const { c: a } = await member(node, uniq('liker'), room);
    const { c: b } = await member(node, uniq('watcher'), room);
    const before = a.frames.length;
    for (let i = 0; i < 3; i++) a.send({ op: 'send', room, kind: 'like' });
    await b.waitFor((f) => f.op === 'batch' && f.likes === 3);
    // A later request's reply proves everything before it was answered (replies are in order).
    expect(await request(a, { op: 'ping' })).toMatchObject({ op: 'pong' });
    await sleep(250); // two more ticks: an ack owed for the likes would be out by now
    expect(a.frames.slice(before).filter((f) => f.op !== 'pong' && f.op !== 'batch')).toEqual([]);
    const acked = await request(a, { op: 'send', room, kind: 'like' });
    expect(acked).toMatchObject({ op: 'ack', shown: true, seq: expect.any(Number) });
    await closeAll(a, b);
  });

  it('a like frame may carry a count (the SDK sums taps): members see the sum, over the wire', async () => {
    const room = uniq('counted');
    const { c: a } = await member(node, uniq('tapper'), room);
    const { c: b } = await member(node, uniq('viewer'), room);
    a.send({ op: 'send', room, kind: 'like', count: 7 });
    await b.waitFor((f) => f.op === 'batch' && f.likes === 7);
    const refused = await request(a, { op: 'send', room, kind: 'like', count: 0 });
    expect(refused).toMatchObject({ op: 'error', code: 'BAD_FRAME' });
    await closeAll(a, b);
  });

  it('a like without ref that is refused still gets its error, without ref', async () => {
    const c = await user(node, uniq('outsider'));
    c.send({ op: 'send', room: uniq('elsewhere'), kind: 'like' });
    const err = await c.op('error');
    expect(err).toMatchObject({ code: 'NOT_JOINED' });
    expect(err.ref).toBeUndefined();
    await closeAll(c);
  });

  it('the acks of one tick go out with the batch frame, in its socket write', async () => {
    const room = uniq('cork');
    const { c } = await member(node, uniq('corked'), room);
    await sleep(50); // welcome and joined are written
    const m0 = await metrics(node);
    const refs = [nextRef(), nextRef(), nextRef()];
    // Three chats (the default burst) in one client write burst: one tick appends them together.
    for (const ref of refs) c.send({ op: 'send', room, kind: 'chat', body: `m${ref}`, ref });
    for (const ref of refs) expect(await c.reply(ref)).toMatchObject({ op: 'ack', shown: true });
    const acks = refs.map((ref) => c.frames.find((f) => f.ref === ref)!.seq);
    const m1 = await metrics(node);
    const frames = metricValue(m1, 'roomcast_reply_frames_total') - metricValue(m0, 'roomcast_reply_frames_total');
    const writes = metricValue(m1, 'roomcast_reply_writes_total') - metricValue(m0, 'roomcast_reply_writes_total');
    expect(frames).toBe(3);
    // uWS writes the socket's pending batch before the corked acks: the batch comes first.
    const batchAt = c.frames.findIndex((f) => holds(f, acks[0]));
    const firstAck = c.frames.findIndex((f) => f.ref === refs[0]);
    expect(batchAt).toBeGreaterThanOrEqual(0);
    expect(batchAt).toBeLessThan(firstAck);
    // All three in one log entry: they shared the batch frame's write and took none of their own.
    if (new Set(acks).size === 1) expect(writes).toBe(0);
    else expect(writes).toBeLessThan(3);
    await closeAll(c);
  });
});

describe('acks of a steady stream', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 50, chatRate: 100, chatBurst: 100 });
  });
  afterAll(() => node.stop());

  it('each ride its own batch: the wait timer of one tick never writes the next tick\'s acks alone', async () => {
    const room = uniq('steady');
    const { c } = await member(node, uniq('streamer'), room);
    await sleep(100);
    const m0 = await metrics(node);
    // One chat per tick: each tick's acks ride while the previous tick's wait timer is still due.
    const refs: number[] = [];
    for (let i = 0; i < 40; i++) {
      refs.push(nextRef());
      c.send({ op: 'send', room, kind: 'chat', body: `m${i}`, ref: refs[i] });
      await sleep(50);
    }
    for (const ref of refs) expect(await c.reply(ref)).toMatchObject({ op: 'ack', shown: true });
    const m1 = await metrics(node);
    expect(metricValue(m1, 'roomcast_reply_frames_total') - metricValue(m0, 'roomcast_reply_frames_total')).toBe(40);
    expect(metricValue(m1, 'roomcast_reply_writes_total') - metricValue(m0, 'roomcast_reply_writes_total')).toBe(0);
    await closeAll(c);
  });
});

describe('acks of a member of several rooms', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 100 });
  });
  afterAll(() => node.stop());

  it('ride the batch of the room they were sent in, even when another room of the member publishes first', async () => {
    const [a, b] = [uniq('first'), uniq('second')];
    const { c } = await member(node, uniq('both'), a);
    expect(await request(c, { op: 'join', room: b })).toMatchObject({ op: 'joined' });
    const { c: x } = await member(node, uniq('talker'), a);
    await sleep(150); // a tick boundary behind us
    const ref = nextRef();
    x.send({ op: 'send', room: a, kind: 'chat', body: 'in a', ref: 1 }); // room a's entry is queued first
    await sleep(5);
    c.send({ op: 'send', room: b, kind: 'chat', body: 'in b', ref });
    const ack = await c.reply(ref);
    expect(ack).toMatchObject({ op: 'ack', shown: true });
    const inA = c.frames.findIndex((f) => f.op === 'batch' && f.room === a);
    const inB = c.frames.findIndex((f) => f.op === 'batch' && f.room === b && holds(f, ack.seq));
    const ackAt = c.frames.indexOf(ack);
    expect(inA).toBeGreaterThanOrEqual(0);
    expect(inB).toBeGreaterThanOrEqual(0);
    expect(ackAt).toBeGreaterThan(inB);
    await closeAll(c, x);
  });

  it('a member that left the room before its message was logged still gets the ack, with the batch it no longer receives', async () => {
    const room = uniq('leaving');
    const { c } = await member(node, uniq('leaver'), room);
    const { c: x } = await member(node, uniq('stays'), room);
    const ref = nextRef();
    c.send({ op: 'send', room, kind: 'chat', body: 'bye', ref });
    expect(await request(c, { op: 'leave', room })).toMatchObject({ op: 'left', room });
    const [ack, batch] = await Promise.all([
      c.reply(ref, 1000),
      x.waitFor((f) => f.op === 'batch' && (f.msgs as Array<{ b: string }>).some((m) => m.b === 'bye')),
    ]);
    expect(ack).toMatchObject({ op: 'ack', shown: true });
    expect(holds(batch, ack.seq)).toBe(true);
    expect(c.batches(room)).toEqual([]);
    await closeAll(c, x);
  });
});

describe('acks of sampled-out chat', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 100, roomChatBudget: 1 });
  });
  afterAll(() => node.stop());

  it('come with the batch of their tick, not before it', async () => {
    const room = uniq('sampled');
    const { c } = await member(node, uniq('chatty'), room);
    await sleep(50);
    const refs = [nextRef(), nextRef(), nextRef()];
    for (const ref of refs) c.send({ op: 'send', room, kind: 'chat', body: `s${ref}`, ref });
    const replies = await Promise.all(refs.map((ref) => c.reply(ref)));
    expect(replies.filter((r) => r.shown === false).length).toBe(2);
    const shown = replies.find((r) => r.shown === true)!;
    const batchAt = c.frames.findIndex((f) => holds(f, shown.seq));
    expect(batchAt).toBeGreaterThanOrEqual(0);
    for (const ref of refs) expect(c.frames.findIndex((f) => f.ref === ref)).toBeGreaterThan(batchAt);
    // The room's budget is spent: the next tick logs nothing and no batch comes. Its acks go
    // out anyway, within one tick.
    const { c: d } = await member(node, uniq('late'), room);
    const more = [nextRef(), nextRef()];
    for (const ref of more) d.send({ op: 'send', room, kind: 'chat', body: `t${ref}`, ref });
    for (const ref of more) expect(await d.reply(ref, 1000)).toMatchObject({ op: 'ack', shown: false });
    await closeAll(c, d);
  });
});
