// A room's fan-out over shards of real uWS sockets (gateway/room-fanout.ts), with shards of two
// members and one shard per turn (`fanoutSliceMs` 0, as in a storm) so that every frame takes
// several loop turns: every member gets every batch once and
// in order while others join and leave during the passes, and acks still ride their batch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, metricValue, sleep, startTestNode, NO_FRAME_BUDGET, type Frame } from './helpers.js';
import { closeAll, gaps, member, members, nextRef, request, summarize, uniq } from './ws-helpers.js';
import { postShown } from './api-helpers.js';

const batches = (fs: readonly Frame[]) => fs.filter((f) => f.op === 'batch');

describe('fan-out over shards', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ apiKey: API_KEY, fanoutShardMembers: 2, fanoutSliceMs: 0, tickMs: 20, joinRate: 1000, joinBurst: 1000, ...NO_FRAME_BUDGET });
  });
  afterAll(() => node.stop());

  it('every member gets every batch once and in order, while others join and leave during the passes', async () => {
    const room = uniq('shards');
    const stay = await members(node, 9, 'stay', room);
    const churners = await Promise.all(Array.from({ length: 4 }, (_, i) => member(node, uniq(`churn${i}`), room)));
    // A churner's stays: the batches between its `joined` and the reply to its `leave`.
    const episodes: Array<{ after: number; frames: Frame[] }> = [];
    let posting = true;
    const churn = churners.map(async ({ c, joined: first }) => {
      let joined = first;
      while (posting) {
        await sleep(Math.random() * 40);
        const left = await request(c, { op: 'leave', room });
        episodes.push({ after: joined.seq as number, frames: c.frames.slice(c.frames.indexOf(joined) + 1, c.frames.indexOf(left)) });
        await sleep(Math.random() * 15);
        joined = await request(c, { op: 'join', room });
      }
    });
    let last = 0;
    for (let i = 0; i < 80; i++) {
      last = await postShown(node, room, { kind: 'chat', body: `m${i}`, uid: 'backend' });
      if (i % 4 === 0) await sleep(5);
    }
    posting = false;
    await Promise.all(churn);
    for (const { c, joined } of stay) {
      await c.waitFor((f) => f.op === 'batch' && (f.to as number) >= last);
      const bs = batches(c.frames);
      expect(gaps(bs, joined.seq as number), summarize(bs, joined.seq as number)).toEqual([]);
    }
    expect(episodes.length).toBeGreaterThan(10);
    for (const e of episodes) expect(gaps(batches(e.frames), e.after), summarize(batches(e.frames), e.after)).toEqual([]);
    await closeAll(...stay.map((m) => m.c), ...churners.map((m) => m.c));
  });

  it("acks of a member in a later shard go out with the batch, in its socket write", async () => {
    const room = uniq('rider');
    const others = await members(node, 5, 'before', room); // shards 0..2
    const { c } = await member(node, uniq('sender'), room); // shard 2 (its second seat)
    await sleep(50);
    const m0 = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
    const refs = [nextRef(), nextRef(), nextRef()];
    for (const ref of refs) c.send({ op: 'send', room, kind: 'chat', body: `m${ref}`, ref });
    for (const ref of refs) expect(await c.reply(ref)).toMatchObject({ op: 'ack', shown: true });
    const m1 = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
    const seqs = refs.map((ref) => c.frames.find((f) => f.ref === ref)!.seq as number);
    const writes = metricValue(m1, 'roomcast_reply_writes_total') - metricValue(m0, 'roomcast_reply_writes_total');
    // Each ack after the batch that holds its seq, and no write of its own for an entry's acks.
    for (const [i, ref] of refs.entries()) {
      const at = c.frames.findIndex((f) => f.op === 'batch' && (f.from as number) <= seqs[i]! && seqs[i]! <= (f.to as number));
      expect(at).toBeGreaterThanOrEqual(0);
      expect(at).toBeLessThan(c.frames.findIndex((f) => f.ref === ref));
    }
    expect(writes).toBeLessThan(new Set(seqs).size === 1 ? 1 : 3);
    await closeAll(c, ...others.map((m) => m.c));
  });
});
