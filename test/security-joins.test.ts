// Issue 14, joins that wait: a kick must reach a pending join (finding 1), recovery replays
// must not pile up (finding 4, Redis mode), and pending joins hold room slots (finding 6).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomHead } from '../src/bus/bus.js';
import { MemoryBus } from '../src/bus/memory-bus.js';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, NO_FRAME_BUDGET, SECRET, sleep, startTestNode, token, type Client, type Frame } from './helpers.js';
import { api } from './api-helpers.js';
import { hasPython } from './fuzz-helpers.js';
import { RedisServer } from './redis-server.js';
import { closeAll, expectNone, member, metric, nextRef, pauseReading, quiet, replyTo, resumeReading, uniq, user } from './ws-helpers.js';
import { nonReader } from './security-helpers.js';

/** A memory bus whose `follow` takes a while, as a busy Redis would: joins of a new room wait. */
class SlowFollowBus extends MemoryBus {
  override async follow(room: string): Promise<RoomHead> {
    await sleep(400);
    return super.follow(room);
  }
}

const kick = (node: RoomcastNode, room: string, uid: string, seconds: number) =>
  api(node, 'POST', `/v1/rooms/${room}/kick`, { uid, seconds });

/** The attacker ends up outside the room: its chat is refused and nobody sees it. */
async function expectOut(attacker: Client, observer: Client, room: string): Promise<void> {
  const ref = nextRef();
  attacker.send({ op: 'send', room, kind: 'chat', body: 'dodged the ban', ref });
  expect(await replyTo(attacker, ref)).toMatchObject({ op: 'error' });
  await expectNone(observer, (f) => f.op === 'batch' && JSON.stringify(f.msgs).includes('dodged the ban'), 300);
  const again = nextRef();
  attacker.send({ op: 'join', room, ref: again });
  expect(await replyTo(attacker, again)).toMatchObject({ op: 'error', code: 'KICKED' });
}

describe('finding 1: a kick reaches joins that are still waiting', () => {
  let node: RoomcastNode;
  let slow: RoomcastNode;
  beforeAll(async () => {
    [node, slow] = await Promise.all([
      startTestNode({ tickMs: 20, secret: SECRET, apiKey: API_KEY }),
      startTestNode({ tickMs: 20, secret: SECRET, apiKey: API_KEY, joinRate: 100, joinBurst: 100 }, { bus: new SlowFollowBus({ history: 100 }) }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([node?.stop(), slow?.stop()]);
  });

  it('a join with a since far beyond the log, then a kick: the attacker is out, its chat refused', async () => {
    const room = uniq('ban-dodge');
    const observer = (await member(node, uniq('obs'), room)).c;
    const uid = uniq('troll');
    const attacker = await user(node, uid);
    const ref = nextRef();
    attacker.send({ op: 'join', room, since: 1_000_000, ref });
    expect((await kick(node, room, uid, 3600)).status).toBe(200);
    const answer = await replyTo(attacker, ref, 5000);
    // Either refused outright, or answered at once (nothing to wait for) and then kicked.
    if (answer.op === 'joined') {
      expect(answer.recovered).toBe(false);
      await attacker.op('kicked');
    } else expect(answer).toMatchObject({ op: 'error', code: 'KICKED' });
    await expectOut(attacker, observer, room);
    await closeAll(observer, attacker);
  });

  it('a kick while the join waits for the room to be followed: the join answers KICKED', async () => {
    const room = uniq('slow-follow');
    const uid = uniq('troll');
    const attacker = await user(slow, uid);
    const ref = nextRef();
    attacker.send({ op: 'join', room, ref });
    await sleep(50); // the join is now waiting for follow()
    expect((await kick(slow, room, uid, 3600)).status).toBe(200);
    expect(await replyTo(attacker, ref)).toMatchObject({ op: 'error', code: 'KICKED' });
    const observer = (await member(slow, uniq('obs'), room)).c;
    await expectOut(attacker, observer, room);
    await closeAll(observer, attacker);
  });
});

describe('finding 6: pending joins count against maxRoomsPerConn', () => {
  let node: RoomcastNode;
  let slow: RoomcastNode;
  beforeAll(async () => {
    [node, slow] = await Promise.all([
      startTestNode({ tickMs: 20 }),
      startTestNode({ tickMs: 20, joinRate: 100, joinBurst: 100 }, { bus: new SlowFollowBus({ history: 100 }) }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([node?.stop(), slow?.stop()]);
  });

  it('15 joins paced at 5/s, each with a since far ahead: at most 8 rooms (the limit)', async () => {
    const c = await user(node, uniq('hoarder'));
    const refs: number[] = [];
    for (let i = 0; i < 15; i++) {
      const ref = nextRef();
      refs.push(ref);
      c.send({ op: 'join', room: uniq('hoard'), since: 1_000_000, ref });
      await sleep(200);
    }
    const replies = await Promise.all(refs.map((r) => replyTo(c, r, 5000)));
    expect(replies.filter((f) => f.op === 'joined').length).toBe(8);
    expect(replies.filter((f) => f.op === 'error').map((f) => f.code)).toEqual(Array(7).fill('TOO_MANY_ROOMS'));
    await closeAll(c);
  });

  it('9 joins of new rooms at once, all waiting: 8 joined, the 9th TOO_MANY_ROOMS', async () => {
    const c = await user(slow, uniq('hoarder'));
    const refs = Array.from({ length: 9 }, () => nextRef());
    refs.forEach((ref) => c.send({ op: 'join', room: uniq('pending'), ref }));
    const replies = await Promise.all(refs.map((r) => replyTo(c, r, 5000)));
    expect(replies.map((f) => (f.op === 'joined' ? 'joined' : f.code))).toEqual([...Array(8).fill('joined'), 'TOO_MANY_ROOMS']);
    // A second join of a room whose join is still pending is refused, not stacked.
    const room = uniq('pending-twice');
    const [a, b] = [nextRef(), nextRef()];
    const d = await user(slow, uniq('twice'));
    d.send({ op: 'join', room, ref: a });
    d.send({ op: 'join', room, ref: b });
    expect(await replyTo(d, b)).toMatchObject({ op: 'error', code: 'RATE_LIMITED' });
    expect(await replyTo(d, a)).toMatchObject({ op: 'joined' });
    await closeAll(c, d);
  });
});

describe('finding 4: recovery replays do not pile up (Redis)', () => {
  let redis: RedisServer;
  let node: RoomcastNode;
  const room = 'replay-room';
  const ENTRIES = 150;
  beforeAll(async () => {
    redis = await RedisServer.launch();
    node = await startTestNode({
      ...NO_FRAME_BUDGET,
      redis: redis.url,
      redisPrefix: uniq('sec').replace(/[^A-Za-z0-9]/g, ''),
      tickMs: 5,
      secret: SECRET,
      apiKey: API_KEY,
      joinRate: 1000,
      joinBurst: 1000,
      idleTimeoutSec: 8,
    });
    // ENTRIES log entries of ~4 KB each: ~600 KB for every full replay.
    for (let i = 0; i < ENTRIES; i++) {
      const res = await api(node, 'POST', `/v1/rooms/${room}/messages`, { kind: 'system', body: `${i} ${'x'.repeat(4000)}` });
      expect(res.status).toBe(202);
    }
  }, 60_000);
  afterAll(async () => {
    await node?.stop();
    await redis?.close();
  });

  it('80 re-joins with since from a socket that does not read: one replay at a time, the last one complete', async () => {
    const { c, joined } = await member(node, uniq('replayer'), room);
    expect(joined.seq).toBeGreaterThanOrEqual(ENTRIES);
    pauseReading(c);
    const refs = Array.from({ length: 80 }, () => nextRef());
    for (const ref of refs) c.send({ op: 'join', room, since: 0, ref });
    await sleep(1500);
    resumeReading(c);
    await replyTo(c, refs.at(-1)!, 15_000);
    await quiet(c, 500, 15_000);
    expect(c.closeCode).toBeUndefined();
    const replayed = c.batches(room).reduce((n, b) => n + (b.to as number) - (b.from as number) + 1, 0);
    // Without the limit every one of the 80 replays runs to the end (~80 x ENTRIES entries).
    expect(replayed).toBeLessThan(10 * ENTRIES);
    const lastJoined = c.frames.findIndex((f) => f.ref === refs.at(-1));
    expect(c.frames[lastJoined]).toMatchObject({ op: 'joined', recovered: true });
    const after = c.frames.slice(lastJoined + 1).filter((f): f is Frame => f.op === 'batch');
    expect(after[0]?.from).toBe(1);
    expect(Math.max(...after.map((b) => b.to as number))).toBeGreaterThanOrEqual(ENTRIES);
    await closeAll(c);
  }, 40_000);

  it.skipIf(!hasPython())('a replay to a socket that never drains closes it with 4009 (pings do not keep it alive)', async () => {
    const t = await token(node, { uid: uniq('stall') });
    const before = await metric(node.port, 'roomcast_connections');
    const r = await nonReader({
      port: node.port,
      path: `/ws?token=${t}&room=${room}&since=0`,
      burst: [],
      holdMs: 11_000, // idleTimeoutSec 8 bounds a stalled replay
      keepalive: { op: 'ping' },
      keepaliveMs: 2000,
    });
    expect(r.error).toBeUndefined();
    expect(r.eof).toBe(true);
    expect([4009, null]).toContain(r.closeCode);
    expect(await metric(node.port, 'roomcast_connections')).toBe(before);
  }, 40_000);
});
