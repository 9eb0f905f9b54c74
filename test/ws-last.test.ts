// `join` with `last: N` (PROTOCOL §9): the room's last N log entries as batch frames right
// after `joined`, contiguous with the live batches that follow; ignored with `since`; also
// as the `last` query parameter of the upgrade. A crowd joining at once costs at most one
// shared log read per room, not one per joiner (the worker serves the tail from memory).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomLog } from '../src/bus/bus.js';
import { RedisStreamsBus } from '../src/bus/redis-streams-bus.js';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, SECRET, startTestNode, type Client, type Frame } from './helpers.js';
import { postShown } from './api-helpers.js';
import { closeAll, gaps, member, request, uniq, user, waitUntil } from './ws-helpers.js';
import { RedisServer } from './redis-server.js';

const BASE = { apiKey: API_KEY, secret: SECRET, tickMs: 20 } as const;
const bodies = (batches: Frame[]) => batches.flatMap((b) => (b.msgs as Array<{ b: string }>).map((m) => m.b));

async function posted(node: RoomcastNode, room: string, n: number, tag = 'm'): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 1; i <= n; i++) seqs.push(await postShown(node, room, { kind: 'system', body: `${tag}${i}` }));
  return seqs;
}

/** What `c` got in `room` after its `joined`, in arrival order. */
function afterJoined(c: Client, room: string): Frame[] {
  const i = c.frames.findIndex((f) => f.op === 'joined' && f.room === room);
  return c.frames.slice(i + 1).filter((f) => f.room === room);
}

describe('join with last on the memory bus', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode(BASE);
  });
  afterAll(() => node?.stop());

  it('sends the last N entries right after joined, then live batches without a gap', async () => {
    const room = uniq('last');
    const early = await member(node, 'early', room);
    await posted(node, room, 6);
    await waitUntil(() => early.c.batches(room).at(-1)?.to === 6, 3000, 'early member caught up');
    const late = await user(node, 'late');
    const joined = await request(late, { op: 'join', room, last: 4 });
    expect(joined).toMatchObject({ op: 'joined', room, seq: 6 });
    expect(joined.recovered).toBeUndefined();
    await waitUntil(() => late.batches(room).at(-1)?.to === 6, 3000, 'tail');
    await posted(node, room, 1, 'live');
    await waitUntil(() => late.batches(room).at(-1)?.to === 7, 3000, 'live batch');
    const frames = afterJoined(late, room);
    expect(frames.every((f) => f.op === 'batch')).toBe(true);
    expect(frames[0]!.from).toBe(3);
    expect(gaps(frames, 2)).toEqual([]);
    expect(bodies(frames)).toEqual(['m3', 'm4', 'm5', 'm6', 'live1']);
    await closeAll(early.c, late);
  });

  it('reads a room it does not follow yet from the log (whole log when N exceeds it)', async () => {
    const room = uniq('cold');
    await posted(node, room, 3);
    const { c, joined } = await member(node, 'cold', room);
    expect(joined.seq).toBe(3);
    expect(c.batches(room)).toEqual([]); // no last: nothing before live batches
    const late = await user(node, 'late2');
    const j2 = await request(late, { op: 'join', room, last: 100 });
    expect(j2).toMatchObject({ op: 'joined', seq: 3 });
    await waitUntil(() => late.batches(room).at(-1)?.to === 3, 3000, 'tail');
    expect(bodies(late.batches(room))).toEqual(['m1', 'm2', 'm3']);
    await closeAll(c, late);

    const cold2 = uniq('cold');
    await posted(node, cold2, 5);
    const first = await user(node, 'first');
    expect(await request(first, { op: 'join', room: cold2, last: 2 })).toMatchObject({ op: 'joined', seq: 5 });
    await waitUntil(() => first.batches(cold2).at(-1)?.to === 5, 3000, 'tail of an unfollowed room');
    expect(bodies(first.batches(cold2))).toEqual(['m4', 'm5']);
    expect(gaps(first.batches(cold2), 3)).toEqual([]);
    await closeAll(first);
  });

  it('ignores last when since is given, and last 0 sends nothing', async () => {
    const room = uniq('since');
    await posted(node, room, 4);
    const a = await user(node, 'a');
    expect(await request(a, { op: 'join', room, since: 4, last: 3 })).toMatchObject({ op: 'joined', recovered: true, seq: 4 });
    const b = await user(node, 'b');
    expect(await request(b, { op: 'join', room, last: 0 })).toMatchObject({ op: 'joined', seq: 4 });
    await posted(node, room, 1, 'live');
    await waitUntil(() => a.batches(room).length > 0 && b.batches(room).length > 0, 3000, 'live batches');
    for (const c of [a, b]) expect(bodies(c.batches(room))).toEqual(['live1']);
    await closeAll(a, b);
  });

  it.each([
    ['over 100', 101],
    ['negative', -1],
    ['a string', '3'],
    ['fractional', 1.5],
  ])('refuses last %s with BAD_FRAME', async (_what, last) => {
    const c = await user(node, 'bad');
    expect(await request(c, { op: 'join', room: 'r', last })).toMatchObject({ op: 'error', code: 'BAD_FRAME' });
    await closeAll(c);
  });

  it('sends a big tail compressed to members that asked for compression, plain to the others', async () => {
    const room = uniq('big');
    for (let i = 1; i <= 3; i++) await postShown(node, room, { kind: 'system', body: `${i}`.repeat(900) });
    const z = await user(node, 'z', { compress: true });
    const plain = await user(node, 'p');
    for (const c of [z, plain]) {
      await request(c, { op: 'join', room, last: 3 });
      await waitUntil(() => c.batches(room).at(-1)?.to === 3, 3000, 'tail');
      expect(bodies(c.batches(room)).map((b) => b[0])).toEqual(['1', '2', '3']);
    }
    expect(z.batches(room).every((b) => b.viaZ === true)).toBe(true);
    expect(plain.batches(room).some((b) => b.viaZ === true)).toBe(false);
    await closeAll(z, plain);
  });

  it('takes last as a query parameter of the upgrade', async () => {
    const room = uniq('query');
    await posted(node, room, 5);
    const c = await user(node, 'q', { room, last: 2 });
    await waitUntil(() => c.batches(room).at(-1)?.to === 5, 3000, 'tail');
    expect(bodies(c.batches(room))).toEqual(['m4', 'm5']);
    for (const bad of ['abc', '101', '-1']) {
      const b = await user(node, 'qb', { room, last: bad });
      const err = await b.op('error');
      expect(err.code).toBe('BAD_FRAME');
      expect(b.frames.some((f) => f.op === 'joined')).toBe(false);
      await closeAll(b);
    }
    await closeAll(c);
  });
});

describe('join with last on a real Redis', () => {
  let redis: RedisServer;
  let node: RoomcastNode;
  let ranges = 0;
  beforeAll(async () => {
    redis = await RedisServer.launch();
    const bus = new RedisStreamsBus({ target: { url: redis.url }, prefix: `last${process.pid}`, history: 1000, workerId: 'w-last' });
    const range: RoomLog['range'] = bus.range.bind(bus);
    // Counts the log reads the node makes (the bus itself is the real one).
    bus.range = (room, after, limit) => {
      ranges++;
      return range(room, after, limit);
    };
    node = await startTestNode({ ...BASE, redis: redis.url }, { bus });
  });
  afterAll(async () => {
    await node?.stop();
    await redis?.close();
  });

  it('a crowd joining at once gets the tail from one shared read', async () => {
    const room = uniq('crowd');
    await posted(node, room, 10);
    const crowd = await Promise.all(Array.from({ length: 20 }, (_v, i) => user(node, `v${i}`)));
    ranges = 0;
    const joins = await Promise.all(crowd.map((c) => request(c, { op: 'join', room, last: 5 })));
    expect(joins.every((j) => j.op === 'joined' && j.seq === 10)).toBe(true);
    for (const c of crowd) await waitUntil(() => c.batches(room).at(-1)?.to === 10, 3000, 'tail');
    for (const c of crowd) expect(bodies(c.batches(room))).toEqual(['m6', 'm7', 'm8', 'm9', 'm10']);
    expect(ranges).toBeLessThanOrEqual(1);

    // Later joiners are served from what the worker delivered: no read at all.
    await posted(node, room, 2, 'n');
    await waitUntil(() => crowd[0]!.batches(room).at(-1)?.to === 12, 3000, 'live');
    ranges = 0;
    const late = await user(node, 'late');
    await request(late, { op: 'join', room, last: 3 });
    await waitUntil(() => late.batches(room).at(-1)?.to === 12, 3000, 'tail');
    expect(bodies(late.batches(room))).toEqual(['m10', 'n1', 'n2']);
    expect(ranges).toBe(0);
    await closeAll(...crowd, late);
  });
});
