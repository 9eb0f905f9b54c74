// PROTOCOL §1/§4: compress=deflate opts in to `z` frames, only for frames over the threshold.
import { decode } from '@msgpack/msgpack';
import { inflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import WebSocket from 'ws';
import { Client, startTestNode, token, type Frame } from './helpers.js';
import { closeAll, member, plainSize, request, uniq, user, waitUntil } from './ws-helpers.js';

const THRESHOLD = 200;

/** Every frame a client got, checked against the rule: `z` iff compressing and over the threshold. */
function checkFrames(c: Client, compress: boolean): void {
  expect(c.frames.length).toBe(c.rawFrames.length);
  c.frames.forEach((f, i) => {
    const raw = c.rawFrames[i]!;
    const outer = decode(raw) as Frame;
    const size = plainSize(f);
    if (!compress) {
      expect(outer.op, `plain client got a z frame for ${f.op}`).not.toBe('z');
      return;
    }
    expect(outer.op === 'z', `${f.op} of ${size} bytes (threshold ${THRESHOLD})`).toBe(size > THRESHOLD);
    if (outer.op === 'z') {
      expect(Object.keys(outer).sort()).toEqual(['data', 'op']);
      expect(outer.data).toBeInstanceOf(Uint8Array); // MessagePack bin
      expect(inflateRawSync(outer.data as Uint8Array).byteLength).toBe(size);
    }
  });
}

const bodyOf = (f: Frame) => (f.msgs as Array<{ b: string }>).map((m) => m.b);

describe('compress=deflate', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, compressThreshold: THRESHOLD, chatRate: 100, chatBurst: 100 });
  });
  afterAll(() => node.stop());

  it('big batches arrive as z frames, small ones plain; plain clients never get z', async () => {
    const room = uniq('zroom');
    const { c: z } = await member(node, uniq('z'), room, { compress: true });
    const { c: p } = await member(node, uniq('p'), room);
    const small = 'hi';
    const big = 'b'.repeat(250);
    expect(await request(p, { op: 'send', room, kind: 'chat', body: small })).toMatchObject({ shown: true });
    expect(await request(p, { op: 'send', room, kind: 'chat', body: big })).toMatchObject({ shown: true });
    for (const c of [z, p]) await c.waitFor((f) => f.op === 'batch' && bodyOf(f).includes(big));
    await z.waitFor((f) => f.op === 'batch' && bodyOf(f).includes(small));

    const zSmall = z.frames.find((f) => f.op === 'batch' && bodyOf(f).includes(small))!;
    const zBig = z.frames.find((f) => f.op === 'batch' && bodyOf(f).includes(big))!;
    expect(zSmall.viaZ).toBeUndefined();
    expect(zBig.viaZ).toBe(true);
    expect(p.frames.some((f) => f.viaZ)).toBe(false);

    // The z frame holds exactly the bytes a plain member got for the same batch.
    const pi = p.frames.findIndex((f) => f.op === 'batch' && bodyOf(f).includes(big));
    const zi = z.frames.indexOf(zBig);
    const inflated = inflateRawSync((decode(z.rawFrames[zi]!) as Frame).data as Uint8Array);
    expect(Buffer.compare(inflated, p.rawFrames[pi]!)).toBe(0);

    checkFrames(z, true);
    checkFrames(p, false);
    await closeAll(z, p);
  });

  it('a recovery replay over the threshold is a z frame too; small direct frames stay plain', async () => {
    const room = uniq('zreplay');
    const uid = uniq('zr');
    const { c: first, joined } = await member(node, uid, room, { compress: true });
    await closeAll(first);
    const { c: talker } = await member(node, uniq('talker'), room);
    for (let i = 0; i < 3; i++) await request(talker, { op: 'send', room, kind: 'chat', body: `${i}`.repeat(120) });
    const z = await user(node, uid, { compress: true });
    const j = await request(z, { op: 'join', room, since: joined.seq, epoch: joined.epoch });
    expect(j).toMatchObject({ op: 'joined', recovered: true });
    await waitUntil(() => z.batches(room).some((b) => b.to === j.seq), 3000, 'replay');
    const replay = z.batches(room);
    expect(replay.every((b) => b.viaZ === true)).toBe(true);
    // welcome, joined, pong, error: all small, all plain.
    await request(z, { op: 'ping' });
    await request(z, { op: 'leave', room: 'nope' });
    checkFrames(z, true);
    expect(z.frames.filter((f) => !f.viaZ).map((f) => f.op)).toEqual(expect.arrayContaining(['welcome', 'joined', 'pong', 'error']));
    await closeAll(z, talker);
  });

  it('a join with last: the shared tail reaches a plain joiner plain and a compressing one as z frames', async () => {
    const room = uniq('zlast');
    const { c: talker } = await member(node, uniq('talker'), room);
    for (let i = 0; i < 3; i++) await request(talker, { op: 'send', room, kind: 'chat', body: `${i}`.repeat(120) });
    // The plain joiner first: the tail's frames are encoded for it, the z variant made later for the other.
    const joiners: Client[] = [];
    for (const compress of [false, true]) {
      const c = await user(node, uniq(compress ? 'zl' : 'pl'), { compress });
      const j = await request(c, { op: 'join', room, last: 3 });
      expect(j).toMatchObject({ op: 'joined' });
      await waitUntil(() => c.batches(room).some((b) => b.to === j.seq), 3000, 'tail');
      expect(c.batches(room).every((b) => (b.viaZ === true) === compress)).toBe(true);
      checkFrames(c, compress);
      joiners.push(c);
    }
    const [p, z] = joiners as [Client, Client];
    const pi = p.frames.findIndex((f) => f.op === 'batch');
    const zi = z.frames.findIndex((f) => f.op === 'batch');
    const inflated = inflateRawSync((decode(z.rawFrames[zi]!) as Frame).data as Uint8Array);
    expect(Buffer.compare(inflated, p.rawFrames[pi]!)).toBe(0);
    await closeAll(talker, p, z);
  });

  it('an unknown compress value is ignored (no z)', async () => {
    const room = uniq('zgzip');
    const t = await token(node, { uid: uniq('g') });
    const ws = new WebSocket(`ws://127.0.0.1:${node.port}/ws?token=${t}&room=${room}&compress=gzip`);
    const c = new Client(ws);
    await c.op('joined');
    await request(c, { op: 'send', room, kind: 'chat', body: 'g'.repeat(280) });
    await c.op('batch');
    checkFrames(c, false);
    await closeAll(c);
  });
});
