// PROTOCOL §4 "Ordering, gaps and recovery": one contiguous log per room; since/epoch recovery
// replays exactly what was missed, before live batches.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { REPLAY_FRAME_BYTES } from '../src/engine/rooms.js';
import { NO_FRAME_BUDGET, sleep, startTestNode, token, wsUrl, type Client, type Frame } from './helpers.js';
import { closeAll, gaps, member, members, pauseReading, quiet, replyTo, request, resumeReading, summarize, uniq, user, waitUntil } from './ws-helpers.js';

const SLOW_READER = fileURLToPath(new URL('./fixtures/slow-reader.mjs', import.meta.url));
const bodies = (batches: Frame[]) => batches.flatMap((b) => (b.msgs as Array<{ b: string }>).map((m) => m.b));
const lastTo = (c: Client, room: string) => (c.batches(room).at(-1)?.to as number | undefined) ?? -1;

/** Sends `n` chats from each client, concurrently, without waiting between them; resolves with the acks. */
async function flood(senders: Client[], room: string, n: number, tag: string): Promise<Frame[]> {
  const all: Array<Promise<Frame>> = [];
  for (let i = 0; i < n; i++) {
    senders.forEach((s, j) => all.push(request(s, { op: 'send', room, kind: 'chat', body: `${tag}-${j}-${i}` })));
    if (i % 5 === 4) await sleep(7); // spread over several ticks
  }
  return Promise.all(all);
}

describe('ordering and recovery', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ ...NO_FRAME_BUDGET, tickMs: 10, chatRate: 10_000, chatBurst: 10_000, roomChatBudget: 100_000 });
  });
  afterAll(() => node.stop());

  it('every member sees strictly increasing, contiguous batches (next.from = prev.to + 1), holding every acked message', async () => {
    const room = uniq('order');
    const ms = await members(node, 5, 'm', room);
    const senders = ms.slice(0, 3).map((m) => m.c);
    const acks = await flood(senders, room, 30, 'o');
    expect(acks.every((a) => a.op === 'ack' && a.shown === true)).toBe(true);
    const maxSeq = Math.max(...acks.map((a) => a.seq as number));
    for (const { c, joined } of ms) {
      await waitUntil(() => lastTo(c, room) >= maxSeq, 5000, 'all batches');
      const batches = c.batches(room);
      expect(batches.length).toBeGreaterThan(1);
      expect(gaps(batches, joined.seq as number)).toEqual([]);
      expect(bodies(batches).sort()).toEqual(acks.map((_, k) => `o-${k % 3}-${Math.floor(k / 3)}`).sort());
    }
    // Each ack's seq is the log entry holding that message.
    const batches = ms[4]!.c.batches(room);
    acks.forEach((ack, k) => {
      const body = `o-${k % 3}-${Math.floor(k / 3)}`;
      const holder = batches.find((b) => (b.msgs as Array<{ b: string }>).some((m) => m.b === body))!;
      expect(holder, body).toBeDefined();
      expect(ack.seq as number).toBeGreaterThanOrEqual(holder.from as number);
      expect(ack.seq as number).toBeLessThanOrEqual(holder.to as number);
    });
    // Messages of one sender keep their order.
    for (let j = 0; j < 3; j++) {
      const mine = bodies(batches).filter((b) => b.startsWith(`o-${j}-`));
      expect(mine).toEqual(Array.from({ length: 30 }, (_, i) => `o-${j}-${i}`));
    }
    await closeAll(...ms.map((m) => m.c));
  });

  it('a member joining in the middle of traffic continues right after joined.seq', async () => {
    const room = uniq('midjoin');
    const { c: s } = await member(node, uniq('sender'), room);
    const traffic = flood([s], room, 120, 'mid'); // ~170 ms of traffic
    await sleep(40);
    const { c: late, joined } = await member(node, uniq('late'), room);
    const acks = await traffic;
    const maxSeq = Math.max(...acks.map((a) => a.seq as number));
    expect(joined.seq as number).toBeLessThan(maxSeq); // it did join mid-traffic
    await waitUntil(() => lastTo(late, room) >= maxSeq, 5000, 'batches');
    expect(late.batches(room)[0]!.from).toBe((joined.seq as number) + 1);
    expect(gaps(late.batches(room), joined.seq as number)).toEqual([]);
    await closeAll(s, late);
  });

  it('reconnect with since + epoch: recovered, missed batches replayed first, covering exactly since+1..joined.seq', async () => {
    const room = uniq('reconnect');
    const uid = uniq('rejoiner');
    const { c: talker } = await member(node, uniq('talker'), room);
    const { c: first } = await member(node, uid, room);
    await flood([talker], room, 5, 'before');
    await waitUntil(() => lastTo(first, room) >= (talker.frames.filter((f) => f.op === 'ack').at(-1)!.seq as number), 3000, 'first batches');
    const since = lastTo(first, room);
    const epoch = first.batches(room).at(-1)!.epoch as string;
    await closeAll(first);
    const missed = await flood([talker], room, 12, 'missed');
    // Live traffic continues while the client reconnects.
    const live = flood([talker], room, 20, 'live');
    const c = await user(node, uid);
    const j = await request(c, { op: 'join', room, since, epoch });
    expect(j).toMatchObject({ op: 'joined', room, epoch, recovered: true });
    expect(j.seq as number).toBeGreaterThanOrEqual(Math.max(...missed.map((a) => a.seq as number)));
    const liveAcks = await live;
    await waitUntil(() => lastTo(c, room) >= Math.max(...liveAcks.map((a) => a.seq as number)), 5000, 'live batches');
    const batches = c.batches(room);
    expect(gaps(batches, since)).toEqual([]);
    // The replay comes right after `joined` and ends exactly at joined.seq.
    const ji = c.frames.indexOf(j);
    const replay: Frame[] = [];
    for (const f of c.frames.slice(ji + 1)) {
      if (f.op !== 'batch') continue;
      if ((f.from as number) > (j.seq as number)) break;
      replay.push(f);
    }
    expect(replay[0]!.from).toBe(since + 1);
    expect(replay.at(-1)!.to).toBe(j.seq);
    expect(bodies(replay).slice(0, 12)).toEqual(Array.from({ length: 12 }, (_, i) => `missed-0-${i}`));
    // Every message is seen exactly once.
    const seen = bodies(batches);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.filter((b) => b.startsWith('live'))).toHaveLength(20);
    await closeAll(c, talker);
  });

  it('since = the last seq (nothing missed): recovered true, no replay', async () => {
    const room = uniq('nothing-missed');
    const { c: talker } = await member(node, uniq('talker'), room);
    const ack = await request(talker, { op: 'send', room, kind: 'chat', body: 'x' });
    const c = await user(node, uniq('u'));
    const j = await request(c, { op: 'join', room, since: ack.seq, epoch: (await talker.op('batch')).epoch });
    expect(j).toMatchObject({ recovered: true, seq: ack.seq });
    await request(talker, { op: 'send', room, kind: 'chat', body: 'y' });
    const b = await c.op('batch');
    expect(b.from).toBe((ack.seq as number) + 1);
    await closeAll(c, talker);
  });

  it('since with a wrong epoch, or beyond the log head: recovered false, no replay', async () => {
    const room = uniq('bad-epoch');
    const { c: talker, joined } = await member(node, uniq('talker'), room);
    await flood([talker], room, 3, 'e');
    for (const [since, epoch] of [
      [joined.seq as number, 'some-other-epoch'],
      [10_000, joined.epoch as string],
    ] as const) {
      const c = await user(node, uniq('u'));
      const j = await request(c, { op: 'join', room, since, epoch });
      expect(j).toMatchObject({ op: 'joined', recovered: false });
      await request(talker, { op: 'send', room, kind: 'chat', body: 'next' });
      const b = await c.op('batch');
      expect(b.from).toBe((j.seq as number) + 1);
      await closeAll(c);
    }
    await closeAll(talker);
  });

  it('join with since while already joined replays the gap', async () => {
    const room = uniq('rejoin-gap');
    const { c: talker } = await member(node, uniq('talker'), room);
    const { c, joined } = await member(node, uniq('member'), room);
    const acks = await flood([talker], room, 6, 'g');
    const head = Math.max(...acks.map((a) => a.seq as number));
    await waitUntil(() => lastTo(c, room) >= head, 3000, 'batches');
    const j = await request(c, { op: 'join', room, since: joined.seq, epoch: joined.epoch });
    expect(j).toMatchObject({ op: 'joined', room, recovered: true });
    await waitUntil(() => c.frames.slice(c.frames.indexOf(j)).some((f) => f.op === 'batch' && f.to === j.seq), 3000, 'replay');
    const replay = c.frames.slice(c.frames.indexOf(j) + 1).filter((f) => f.op === 'batch' && (f.to as number) <= (j.seq as number));
    expect(replay[0]!.from).toBe((joined.seq as number) + 1);
    expect(gaps(replay, joined.seq as number)).toEqual([]);
    expect(bodies(replay)).toEqual(Array.from({ length: 6 }, (_, i) => `g-0-${i}`));
    // Still one membership: later batches arrive once.
    await request(talker, { op: 'send', room, kind: 'chat', body: 'once' });
    await c.waitFor((f) => f.op === 'batch' && bodies([f]).includes('once'));
    await sleep(50);
    expect(bodies(c.batches(room)).filter((b) => b === 'once')).toHaveLength(1);
    await closeAll(c, talker);
  });
});

describe('recovery limits', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 10, history: 5, chatRate: 1000, chatBurst: 1000 });
  });
  afterAll(() => node.stop());

  it('since older than the kept history: recovered false; within it: recovered true', async () => {
    const room = uniq('history');
    const { c: talker, joined } = await member(node, uniq('talker'), room);
    const seqs: number[] = [];
    for (let i = 0; i < 9; i++) seqs.push((await request(talker, { op: 'send', room, kind: 'chat', body: `h${i}` })).seq as number);
    expect(new Set(seqs).size).toBe(9); // one log entry (tick) each
    const head = seqs.at(-1)!;
    const epoch = joined.epoch as string;
    const tooOld = await user(node, uniq('old'));
    expect(await request(tooOld, { op: 'join', room, since: joined.seq, epoch })).toMatchObject({ op: 'joined', recovered: false, seq: head });
    expect(await request(tooOld, { op: 'join', room, since: head - 6, epoch })).toMatchObject({ op: 'joined', recovered: false });
    const recent = await user(node, uniq('recent'));
    const j = await request(recent, { op: 'join', room, since: head - 5, epoch });
    expect(j).toMatchObject({ op: 'joined', recovered: true, seq: head });
    await waitUntil(() => lastTo(recent, room) >= head, 3000, 'replay');
    expect(gaps(recent.batches(room), head - 5)).toEqual([]);
    expect(bodies(recent.batches(room))).toEqual(['h4', 'h5', 'h6', 'h7', 'h8']);
    await sleep(50);
    expect(tooOld.batches(room)).toEqual([]);
    await closeAll(talker, tooOld, recent);
  });
});

/**
 * A member that joined and left, and `entries` server messages of `bytes` each posted to the
 * room while it was away (one log entry each); another member keeps the room followed.
 */
async function missedWhileAway(node: RoomcastNode, name: string, entries: number, bytes: number) {
  const room = uniq(name);
  const uid = uniq('traveller');
  const { c: first, joined } = await member(node, uid, room);
  const { c: stay } = await member(node, uniq('stay'), room);
  await closeAll(first);
  const body = 'y'.repeat(bytes);
  let head = 0;
  for (let i = 0; i < entries; i++) {
    const out = await node.engine.post(room, { kind: 'system', body, priority: 'high' });
    if ('seq' in out) head = out.seq;
  }
  return { room, uid, joined, stay, head };
}

describe('recovery of a long gap by a client on a slow link', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 5, maxBackpressure: 262144 });
  });
  afterAll(() => node.stop());

  it('the whole replay arrives (more than one replay frame), even when the client reads slowly', async () => {
    // 110 log entries of ~80 KB (server API messages, one entry per tick): a 9 MB replay
    // that the server sends as two frames (100 entries per replay frame).
    const { room, uid, joined, stay, head } = await missedWhileAway(node, 'long-gap', 110, 80_000);
    expect(head).toBe((joined.seq as number) + 110);
    const c = await user(node, uid);
    c.send({ op: 'join', room, since: joined.seq, epoch: joined.epoch, ref: 1 });
    pauseReading(c); // a slow link: the socket's buffers fill up while the replay is written
    await sleep(400);
    resumeReading(c);
    const j = await replyTo(c, 1, 10_000);
    expect(j).toMatchObject({ op: 'joined', recovered: true, seq: head });
    // Everything arrives (or nothing more comes for a while).
    await waitUntil(() => lastTo(c, room) >= head, 30000, 'the whole replay').catch(() => undefined);
    const got = c.batches(room).map((b) => `${b.from}..${b.to}`);
    const summary = `${got.length} replay frames: ${got.slice(0, 3).join(' ')} ... ${got.slice(-5).join(' ')}`;
    expect(gaps(c.batches(room), joined.seq as number), summary).toEqual([]);
    expect(lastTo(c, room), summary).toBe(head);
    await closeAll(c, stay);
  }, 40_000);

  it('replay frames stay under uWS\'s 16 KiB cork buffer (a bigger frame grows a per-socket buffer uWS keeps)', async () => {
    // 40 entries of 1 KB: 40 KB of replay, one frame under the live cap (FRAME_MAX_BYTES, 64 KiB).
    const { room, uid, joined, stay, head } = await missedWhileAway(node, 'cork-replay', 40, 1000);
    const c = await user(node, uid);
    expect(await request(c, { op: 'join', room, since: joined.seq, epoch: joined.epoch })).toMatchObject({ recovered: true, seq: head });
    await waitUntil(() => lastTo(c, room) >= head, 5000, 'the replay');
    const frames = c.batches(room);
    expect(gaps(frames, joined.seq as number)).toEqual([]);
    expect(frames.length).toBeGreaterThanOrEqual(3);
    for (const f of frames) expect(bodies([f]).join('').length).toBeLessThanOrEqual(REPLAY_FRAME_BYTES);
    await closeAll(c, stay);
  });

  it('a client reading in gulps from another process gets the whole replay of entries larger than the replay buffer', async () => {
    // Each gulp lets uWS write all it held, and its drain event resumes the replay, whose next
    // write finds the socket full again. Written inside that event, a partial write of a frame
    // this large left more than the replay buffer (64 KiB here) queued and was never finished.
    const { room, uid, joined, stay, head } = await missedWhileAway(node, 'gulps', 40, 300_000);
    const t = await token(node, { uid });
    const url = wsUrl(node.port, { token: t, room, since: joined.seq as number, epoch: joined.epoch as string });
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [SLOW_READER], { env: { ...process.env, RC_URL: url, RC_HEAD: String(head) } }, (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      ),
    );
    const { seen } = JSON.parse(out) as { seen: Array<[number, number]> };
    const got = seen.map(([from, to]) => ({ op: 'batch', from, to }));
    expect(gaps(got, joined.seq as number), `${seen.length} frames`).toEqual([]);
    expect(seen.at(-1)?.[1], `${seen.length} frames`).toBe(head);
    await closeAll(stay);
  }, 40_000);
});

describe('re-joining with since while still joined, on a slow link', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 10, maxBackpressure: 16_384, likeRate: 1000, likeBurst: 1000 });
  });
  afterAll(() => node.stop());

  it('the replay still comes entirely before any live batch, without duplicates', async () => {
    const room = uniq('rejoin-slow');
    const { c, joined } = await member(node, uniq('member'), room);
    const { c: talker } = await member(node, uniq('talker'), room);
    // 120 entries of 60 KB (7 MB) that `c` already received live; it asks for them again.
    const body = 'z'.repeat(60_000);
    for (let i = 0; i < 120; i++) await node.engine.post(room, { kind: 'system', body, priority: 'high' });
    await quiet(c, 200);
    let stop = false;
    const live = (async () => {
      while (!stop) {
        talker.send({ op: 'send', room, kind: 'like' });
        await sleep(5);
      }
    })();
    await sleep(30);
    c.send({ op: 'join', room, since: joined.seq, epoch: joined.epoch, ref: 9 });
    pauseReading(c); // a slow link while the replay is written
    await sleep(150);
    resumeReading(c);
    const j = await replyTo(c, 9, 10_000);
    expect(j).toMatchObject({ op: 'joined', recovered: true });
    await waitUntil(() => c.frames.slice(c.frames.indexOf(j)).some((f) => f.op === 'batch' && (f.from as number) > (j.seq as number)), 10_000, 'live batches');
    await sleep(100);
    stop = true;
    await live;
    await sleep(50);
    const after = c.frames.slice(c.frames.indexOf(j) + 1).filter((f) => f.op === 'batch' && f.room === room);
    const shown = summarize(after);
    expect(after[0]?.from, shown).toBe((joined.seq as number) + 1);
    expect(gaps(after, joined.seq as number), shown).toEqual([]);
    await closeAll(c, talker);
  }, 40_000);
});
