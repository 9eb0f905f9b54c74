// GET /v1/rooms/:room and GET /v1/rooms?top=N (PROTOCOL §6) against what real members see.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, joinedClient, startTestNode, SECRET, type Client } from './helpers.js';
import { api, chat, expectError, postShown } from './api-helpers.js';

const BASE = { apiKey: API_KEY, secret: SECRET, tickMs: 20 } as const;

/** Waits until `c` has a batch of `room` reaching `seq`; returns the last batch's `to`. */
async function reached(c: Client, room: string, seq: number): Promise<number> {
  await c.waitFor((f) => f.op === 'batch' && f.room === room && (f.to as number) >= seq);
  const batches = c.batches(room);
  return batches[batches.length - 1]!.to as number;
}

describe('GET /v1/rooms/:room', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode(BASE);
  });
  afterAll(() => node?.stop());

  it('reports {room, members, seq, epoch, ratePerSec} matching what members see', async () => {
    const a = await joinedClient(node, 'ann', 'info');
    const joinedA = a.frames.find((f) => f.op === 'joined')!;
    const fresh = await api(node, 'GET', '/v1/rooms/info');
    expect({ status: fresh.status, body: fresh.body }).toEqual({
      status: 200,
      body: { room: 'info', members: 1, seq: joinedA.seq, epoch: joinedA.epoch, ratePerSec: 0 },
    });

    await postShown(node, 'info', { kind: 'system', body: 'one' });
    const ack = await chat(a, 'info', 'two');
    expect(ack).toMatchObject({ op: 'ack', shown: true });
    const s3 = await postShown(node, 'info', { kind: 'gift', body: 'three' });
    const lastTo = await reached(a, 'info', Math.max(s3, ack.seq as number));

    const res = await api(node, 'GET', '/v1/rooms/info');
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['epoch', 'members', 'ratePerSec', 'room', 'seq']);
    expect(res.body).toMatchObject({ room: 'info', members: 1, seq: lastTo, epoch: joinedA.epoch });
    expect(res.body.seq).toBe(s3);
    expect(res.body.ratePerSec).toBeGreaterThan(0);
    expect(res.body.ratePerSec).toBeLessThan(100);

    // A second member: the count goes up, and its joined agrees with the API.
    const b = await joinedClient(node, 'ben', 'info');
    const joinedB = b.frames.find((f) => f.op === 'joined')!;
    const two = await api(node, 'GET', '/v1/rooms/info');
    expect(two.body).toMatchObject({ members: 2, seq: joinedB.seq, epoch: joinedB.epoch });
    expect(joinedB).toMatchObject({ seq: lastTo, epoch: joinedA.epoch });
    await Promise.all([a.close(), b.close()]);
  });

  it('reports a joined room with an empty log (members 1, seq 0)', async () => {
    const c = await joinedClient(node, 'solo', 'quiet');
    const res = await api(node, 'GET', '/v1/rooms/quiet');
    expect(res.body).toMatchObject({ room: 'quiet', members: 1, seq: 0 });
    await c.close();
  });

  it('reports a room whose members left but whose log remains', async () => {
    const c = await joinedClient(node, 'gone', 'left-room');
    const seq = await postShown(node, 'left-room', { kind: 'system', body: 'x' });
    await reached(c, 'left-room', seq);
    const epoch = c.frames.find((f) => f.op === 'joined')!.epoch;
    await c.close();
    const res = await api(node, 'GET', '/v1/rooms/left-room');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ room: 'left-room', seq, epoch });
  });

  it('answers 404 NOT_FOUND for a room with no members and no log', async () => {
    expectError(await api(node, 'GET', '/v1/rooms/never-seen'), 404, 'NOT_FOUND');
    expectError(await api(node, 'GET', '/v1/rooms/never-seen'), 404, 'NOT_FOUND', 'asked twice');
  });

  it('decodes the room id in the path', async () => {
    const c = await joinedClient(node, 'colon', 'ns:room.1');
    const res = await api(node, 'GET', `/v1/rooms/${encodeURIComponent('ns:room.1')}`);
    expect(res.body).toMatchObject({ room: 'ns:room.1', members: 1 });
    await c.close();
  });
});

describe('GET /v1/rooms?top=N', () => {
  let node: RoomcastNode;
  const clients: Client[] = [];
  beforeAll(async () => {
    node = await startTestNode(BASE);
    const layout: Array<[string, number]> = [
      ['top-b', 2],
      ['top-a', 4],
      ['top-d', 1],
      ['top-c', 3],
    ];
    for (const [room, n] of layout) for (let i = 0; i < n; i++) clients.push(await joinedClient(node, `${room}-u${i}`, room));
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await node?.stop();
  });

  it('lists the N largest rooms, largest first', async () => {
    const res = await api(node, 'GET', '/v1/rooms?top=2');
    expect({ status: res.status, body: res.body }).toEqual({
      status: 200,
      body: {
        rooms: [
          { room: 'top-a', members: 4 },
          { room: 'top-c', members: 3 },
        ],
      },
    });
    expect((await api(node, 'GET', '/v1/rooms?top=1')).body).toEqual({ rooms: [{ room: 'top-a', members: 4 }] });
  });

  it('lists every room when N exceeds the room count, and defaults N to 10', async () => {
    const all = {
      rooms: [
        { room: 'top-a', members: 4 },
        { room: 'top-c', members: 3 },
        { room: 'top-b', members: 2 },
        { room: 'top-d', members: 1 },
      ],
    };
    expect((await api(node, 'GET', '/v1/rooms?top=1000')).body).toEqual(all);
    expect((await api(node, 'GET', '/v1/rooms')).body).toEqual(all);
  });

  it('defaults to the 10 largest', async () => {
    const extra: Client[] = [];
    for (let i = 0; i < 8; i++) extra.push(await joinedClient(node, `extra${i}`, `extra-${i}`));
    const res = await api(node, 'GET', '/v1/rooms');
    expect(res.body.rooms).toHaveLength(10);
    expect(res.body.rooms.slice(0, 4).map((r: { room: string }) => r.room)).toEqual(['top-a', 'top-c', 'top-b', 'top-d']);
    expect((await api(node, 'GET', '/v1/rooms?top=12')).body.rooms).toHaveLength(12);
    await Promise.all(extra.map((c) => c.close()));
  });

  it.each(['0', '-1', '1001', 'abc', '1.5', '', '1e9', '2x'])('answers 400 BAD_REQUEST to top=%s', async (top) => {
    expectError(await api(node, 'GET', `/v1/rooms?top=${top}`), 400, 'BAD_REQUEST', `top=${top}`);
  });
});
