// A member that stops reading must not cost the worker unbounded memory nor slow anyone else
// down: frames it cannot take are skipped (counted in roomcast_backpressure_drops_total), and
// once it reads again it recovers the gap with join+since (PROTOCOL §4).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { sleep, startTestNode, type Client, type Frame } from './helpers.js';
import {
  closeAll,
  CountingMember,
  forceGc,
  gaps,
  member,
  metric,
  pauseReading,
  quiet,
  replyTo,
  request,
  resumeReading,
  summarize,
  uniq,
  waitUntil,
} from './ws-helpers.js';

const MB = 1024 * 1024;

/** The seq up to which the client's batches for `room` are contiguous from `after`. */
function contiguousUpTo(batches: readonly Frame[], after: number): number {
  let last = after;
  for (const b of batches) {
    if (b.from !== last + 1) break;
    last = b.to as number;
  }
  return last;
}

describe('a slow consumer under a flood', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, maxBackpressure: 16_384, history: 5 });
  });
  afterAll(() => node.stop());

  it('keeps RSS bounded, counts skipped frames, and keeps serving everyone else', async () => {
    const room = uniq('flood');
    const calmRoom = uniq('calm');
    const { c: slow } = await member(node, uniq('slow'), room);
    const steady = await CountingMember.join(node, uniq('steady'), room);
    const { c: calm } = await member(node, uniq('calm'), calmRoom);
    const { c: talker } = await member(node, uniq('talker'), calmRoom);
    pauseReading(slow);
    await sleep(50);
    forceGc();
    await sleep(50);
    forceGc();
    const rss0 = process.memoryUsage().rss;
    const dropsBefore = await metric(node.port, 'roomcast_backpressure_drops_total');

    const body = 'x'.repeat(100_000);
    let posted = 0;
    const pongMs: number[] = [];
    let calmAcks = 0;
    const start = Date.now();
    let lastProbe = 0;
    while (posted < 120 * MB && Date.now() - start < 12_000) {
      for (let i = 0; i < 10; i++) {
        void node.engine.post(room, { kind: 'system', body, priority: 'high' });
        posted += body.length;
      }
      if (Date.now() - lastProbe > 300) {
        lastProbe = Date.now();
        const t0 = Date.now();
        void request(calm, { op: 'ping' }).then(() => pongMs.push(Date.now() - t0));
        void request(talker, { op: 'send', room: calmRoom, kind: 'like' }).then((a) => a.op === 'ack' && calmAcks++);
      }
      await sleep(20);
    }
    await sleep(300);
    forceGc();
    await sleep(100);
    forceGc();
    const grew = process.memoryUsage().rss - rss0;

    expect(posted).toBeGreaterThan(60 * MB);
    // Without the send-buffer limit the paused socket alone would hold (nearly) all of it.
    expect(grew, `RSS grew ${(grew / MB).toFixed(1)} MB for ${(posted / MB).toFixed(0)} MB published`).toBeLessThan(posted * 0.75); // measured: ~15-65 MB with the limit, ~220 MB without
    expect(await metric(node.port, 'roomcast_backpressure_drops_total')).toBeGreaterThan(dropsBefore);

    // Everyone else was served throughout: pongs came back quickly, the calm room moved on,
    // and the reading member of the flooded room got its batches.
    await waitUntil(() => pongMs.length >= 5 && calmAcks >= 5, 5000, 'probes');
    expect(Math.max(...pongMs), `pong latencies ${pongMs.join(',')}`).toBeLessThan(3000);
    expect(steady.batches).toBeGreaterThan(10);
    const liked = await calm.op('batch', (f) => f.room === calmRoom && (f.likes as number) > 0);
    expect(liked).toBeDefined();
    expect(await request(calm, { op: 'ping' })).toMatchObject({ op: 'pong' });

    resumeReading(slow);
    await closeAll(slow, calm, talker);
    steady.close();
  }, 40_000);
});

describe('a slow consumer catching up', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, maxBackpressure: 16_384 }); // default history: 1000 entries
  });
  afterAll(() => node.stop());

  /** Floods the room for at least `ms`, and until the server has skipped frames. */
  async function floodFor(room: string, ms: number, size: number): Promise<number> {
    const body = 'y'.repeat(size);
    const start = Date.now();
    const dropsBefore = await metric(node.port, 'roomcast_backpressure_drops_total');
    let dropped = false;
    let checked = 0;
    let last = 0;
    while ((Date.now() - start < ms || !dropped) && Date.now() - start < 8000) {
      if (Date.now() - checked > 200) {
        checked = Date.now();
        dropped = (await metric(node.port, 'roomcast_backpressure_drops_total')) > dropsBefore;
      }
      for (let i = 0; i < 5; i++) {
        void node.engine.post(room, { kind: 'system', body, priority: 'high' }).then((o) => {
          if ('seq' in o) last = Math.max(last, o.seq);
        });
      }
      await sleep(20);
    }
    await sleep(60);
    return last;
  }

  /** Resumes reading and waits until everything the server had buffered has arrived. */
  async function resume(c: Client): Promise<void> {
    resumeReading(c);
    await quiet(c, 600);
  }

  it('after resuming, join with since recovers the gap (recovered:true), replayed before live batches', async () => {
    const room = uniq('catchup');
    const { c: slow, joined } = await member(node, uniq('slow'), room);
    const { c: talker } = await member(node, uniq('talker'), room);
    const dropsBefore = await metric(node.port, 'roomcast_backpressure_drops_total');
    pauseReading(slow);
    const head = await floodFor(room, 1500, 20_000); // ~75 entries of 100 KB: far over the socket's buffers
    expect(await metric(node.port, 'roomcast_backpressure_drops_total')).toBeGreaterThan(dropsBefore);
    await resume(slow);
    const got = slow.batches(room);
    const upTo = contiguousUpTo(got, joined.seq as number);
    expect(upTo, 'frames were skipped while it did not read').toBeLessThan(head);

    // Live traffic goes on while it recovers.
    let stop = false;
    const live = (async () => {
      let n = 0;
      while (!stop) {
        await request(talker, { op: 'send', room, kind: 'like' });
        n++;
        await sleep(15);
      }
      return n;
    })();
    await sleep(60);
    const j = await request(slow, { op: 'join', room, since: upTo, epoch: joined.epoch });
    expect(j).toMatchObject({ op: 'joined', room, recovered: true });
    expect(j.seq as number).toBeGreaterThanOrEqual(head);
    await waitUntil(() => slow.frames.slice(slow.frames.indexOf(j)).some((f) => f.op === 'batch' && (f.to as number) > (j.seq as number)), 10_000, 'live after replay');
    stop = true;
    await live;
    await sleep(100);
    const after = slow.frames.slice(slow.frames.indexOf(j) + 1).filter((f) => f.op === 'batch' && f.room === room);
    const shown = summarize(after);
    // The replay covers exactly since+1..joined.seq, then the live batches follow without a gap.
    expect(after[0]?.from, shown).toBe(upTo + 1);
    expect(gaps(after, upTo), shown).toEqual([]);
    await closeAll(slow, talker);
  }, 40_000);

  it('the replies to its ops are not lost: a paused client gets pong and joined once it reads again', async () => {
    const room = uniq('replies');
    const { c: slow, joined } = await member(node, uniq('slow'), room);
    const dropsBefore = await metric(node.port, 'roomcast_backpressure_drops_total');
    pauseReading(slow);
    await floodFor(room, 1500, 20_000);
    expect(await metric(node.port, 'roomcast_backpressure_drops_total')).toBeGreaterThan(dropsBefore);
    // Still not reading, it asks for a pong and for the gap (as a client that saw a gap would).
    slow.send({ op: 'ping', ref: 71 });
    slow.send({ op: 'join', room, since: joined.seq, epoch: joined.epoch, ref: 72 });
    await sleep(200);
    resumeReading(slow);
    expect(await replyTo(slow, 71)).toMatchObject({ op: 'pong', ref: 71 });
    const j = await replyTo(slow, 72);
    expect(j).toMatchObject({ op: 'joined', ref: 72, room, recovered: true });
    await closeAll(slow);
  }, 40_000);
});
