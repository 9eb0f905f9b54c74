// PROTOCOL §4: `members {room, count}` is pushed periodically, only when the count changed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { sleep, startTestNode, type Client } from './helpers.js';
import { closeAll, member, request, uniq } from './ws-helpers.js';

const PUSH_MS = 200;
const pushes = (c: Client, room: string) => c.frames.filter((f) => f.op === 'members' && f.room === room);

describe('members pushes', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, membersPushMs: PUSH_MS });
  });
  afterAll(() => node.stop());

  it('pushes the new count after another member joins, and nothing while it does not change', async () => {
    const room = uniq('members');
    const { c: a } = await member(node, uniq('a'), room);
    const { c: b } = await member(node, uniq('b'), room);
    expect(await a.op('members', (f) => f.room === room && f.count === 2, 2000)).toEqual({ op: 'members', room, count: 2 });
    await b.op('members', (f) => f.room === room && f.count === 2, 2000);
    // Several push intervals with no change: no more pushes.
    const n = pushes(a, room).length;
    await sleep(PUSH_MS * 4);
    expect(pushes(a, room)).toHaveLength(n);
    // A third member: count 3 is pushed to everyone.
    const { c: c3 } = await member(node, uniq('c'), room);
    for (const c of [a, b, c3]) await c.op('members', (f) => f.room === room && f.count === 3, 2000);
    // Someone leaves: count 2 again.
    await request(c3, { op: 'leave', room });
    await a.waitFor((f) => f.op === 'members' && f.room === room && f.count === 2 && pushes(a, room).indexOf(f) > n, 2000);
    // Consecutive pushes never repeat a count.
    const counts = pushes(a, room).map((f) => f.count);
    for (let i = 1; i < counts.length; i++) expect(counts[i], `pushes: ${counts.join(',')}`).not.toBe(counts[i - 1]);
    // A member that left gets no more pushes for the room.
    const afterLeave = pushes(c3, room).length;
    await closeAll(b);
    await a.op('members', (f) => f.room === room && f.count === 1, 2000);
    await sleep(PUSH_MS);
    expect(pushes(c3, room)).toHaveLength(afterLeave);
    await closeAll(a, c3);
  });

  it('pushes are per room', async () => {
    const r1 = uniq('m1');
    const r2 = uniq('m2');
    const { c: a } = await member(node, uniq('a'), r1);
    await member(node, uniq('x'), r2);
    const { c: y } = await member(node, uniq('y'), r2);
    await y.op('members', (f) => f.room === r2 && f.count === 2, 2000);
    await sleep(PUSH_MS * 2);
    expect(a.frames.filter((f) => f.op === 'members' && f.room !== r1)).toEqual([]);
    await closeAll(a, y);
  });
});
