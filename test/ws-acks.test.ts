// Cheaper acks (docs/protocol.md §8): a like without `ref` is not acked but still counted into
// the room's batch, refusals of it still arrive (without ref), and the replies a socket gets in
// one loop turn go out corked as one write.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { metricValue, sleep, startTestNode } from './helpers.js';
import { closeAll, member, nextRef, request, uniq, user } from './ws-helpers.js';

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

  it('a like without ref that is refused still gets its error, without ref', async () => {
    const c = await user(node, uniq('outsider'));
    c.send({ op: 'send', room: uniq('elsewhere'), kind: 'like' });
    const err = await c.op('error');
    expect(err).toMatchObject({ code: 'NOT_JOINED' });
    expect(err.ref).toBeUndefined();
    await closeAll(c);
  });

  it('the acks a socket gets in one tick go out in one corked write', async () => {
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
    // All three in one log entry means one tick answered them: then they took one write.
    if (new Set(acks).size === 1) expect(writes).toBe(1);
    else expect(writes).toBeLessThan(3);
    await closeAll(c);
  });
});
