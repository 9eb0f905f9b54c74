// RoomFanout's passes: shards over loop turns (one per turn with no time slice; as many as
// the measured cost fits in the slice otherwise), frames in order, joiners placed after the
// frames they joined with. The host here records instead of writing; test/ws-fanout.test.ts
// runs the same over real uWS sockets.
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { RoomFanout, WRITE_OVERHEAD_BYTES, type FanoutFrame, type ShardHost, type ShardMember } from '../src/gateway/room-fanout.js';

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
/** A pass's second turn follows a poll for I/O: two immediates from where its frame was published. */
const pollTurn = () => turn().then(turn);

class Member implements ShardMember {
  shard: number | undefined;
  shardIn(): number | undefined {
    return this.shard;
  }
  enterShard(_room: string, shard: number): void {
    this.shard = shard;
  }
}

/** `cost`: ms a shard's publish takes (a number, or one by the frame's bytes). */
function setup(shardSize: number, sliceMs = 0, cost: number | ((bytes: number) => number) = 0) {
  const writes: Array<{ frame: string; shard: number }> = [];
  let riders: Member[] | undefined;
  const ridden: Array<{ shard: number; riders: number }> = [];
  let idle = 0;
  const failures: unknown[] = [];
  let failOn: number | undefined;
  const host: ShardHost<Member> = {
    takeRiders: () => {
      const r = riders;
      riders = undefined;
      return r;
    },
    turnStarted: () => undefined,
    publishShard: (_room, shard, frame, rs) => {
      if (shard === failOn) throw new Error(`shard ${shard} failed`);
      const ms = typeof cost === 'number' ? cost : cost(frame.plain.byteLength);
      for (const until = performance.now() + ms; performance.now() < until; ); // a costly write
      writes.push({ frame: new TextDecoder().decode(frame.plain), shard });
      if (rs) ridden.push({ shard, riders: rs.length });
      return { receivers: 1, bytes: frame.plain.byteLength };
    },
    idle: () => void idle++,
    failed: (_room, err) => void failures.push(err),
  };
  const fanout = new RoomFanout('r', host, shardSize, () => sliceMs);
  const join = () => {
    const m = new Member();
    m.shard = fanout.join(m);
    return m;
  };
  const frame = (name: string, done?: FanoutFrame['done']): FanoutFrame => ({ plain: new TextEncoder().encode(name), done });
  return { fanout, writes, ridden, join, frame, setRiders: (r: Member[]) => (riders = r), idle: () => idle, failures, failOn: (shard?: number) => (failOn = shard) };
}

describe('room fan-out shards', () => {
  it('fills shards up to their size, and a frame reaches one shard per loop turn', async () => {
    const { fanout, writes, join, frame } = setup(2);
    const members = Array.from({ length: 5 }, join);
    expect(members.map((m) => m.shard)).toEqual([0, 0, 1, 1, 2]);
    let done: unknown;
    fanout.publish(frame('a', (d) => (done = d)));
    expect(writes).toEqual([{ frame: 'a', shard: 0 }]);
    await pollTurn();
    expect(writes.map((w) => w.shard)).toEqual([0, 1]);
    expect(done).toBeUndefined();
    await turn();
    expect(writes.map((w) => w.shard)).toEqual([0, 1, 2]);
    expect(done).toEqual({ receivers: 3, bytes: 3 });
  });

  it('a pass published from an I/O callback reads the sockets again before its second turn', async () => {
    // Under a storm the bus read's callback writes a pass's first shard; its second must not
    // follow in the same loop iteration, before the members' pings (sockets) are read again.
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const accepted: Socket[] = [];
    server.on('connection', (s) => accepted.push(s));
    const a = connect(port, '127.0.0.1');
    await once(a, 'connect');
    while (accepted.length < 1) await turn();
    const b = connect(port, '127.0.0.1');
    await once(b, 'connect');
    while (accepted.length < 2) await turn();
    const { fanout, writes, join, frame } = setup(1);
    join();
    join();
    const readAfter: number[] = [];
    accepted[1]!.on('data', () => readAfter.push(writes.length));
    let done!: () => void;
    const passed = new Promise<void>((resolve) => (done = resolve));
    accepted[0]!.once('data', () => {
      fanout.publish(frame('a', () => done()));
      b.write('ping'); // in the server socket's buffer now: readable at the loop's next poll
    });
    a.write('go');
    await passed;
    await turn();
    expect(readAfter).toEqual([1]); // read between the pass's two turns
    for (const s of [a, b, ...accepted]) s.destroy();
    server.close();
  });

  it('once a turn was timed, writes as many shards a turn as fit in the slice', async () => {
    // Writing is cheap: after the first turn (one shard, nothing measured yet) the rest fit in one.
    const cheap = setup(2, 50);
    Array.from({ length: 8 }, cheap.join);
    cheap.fanout.publish(cheap.frame('a'));
    expect(cheap.writes.map((w) => w.shard)).toEqual([0]);
    await pollTurn();
    expect(cheap.writes.map((w) => w.shard)).toEqual([0, 1, 2, 3]);
    // the next frame: the whole pass in its first turn
    cheap.fanout.publish(cheap.frame('b'));
    await turn();
    expect(cheap.writes.filter((w) => w.frame === 'b').map((w) => w.shard)).toEqual([0, 1, 2, 3]);

    // Writing costs 10 ms a shard of two (5 ms a member) against a 12 ms slice: two shards fit
    // in no turn, so each turn writes one.
    const costly = setup(2, 12, 10);
    Array.from({ length: 6 }, costly.join);
    costly.fanout.publish(costly.frame('a'));
    await pollTurn();
    expect(costly.writes.map((w) => w.shard)).toEqual([0, 1]);
    await turn();
    expect(costly.writes.map((w) => w.shard)).toEqual([0, 1, 2]);
  });

  it('a frame much bigger than the ones timed is written over more turns', async () => {
    // A member's write costs its bytes plus WRITE_OVERHEAD_BYTES (1 ms per 64 KiB of that here).
    // A busy box only makes the timed cost higher, so the fits below are upper bounds.
    const msPer = (bytes: number) => (WRITE_OVERHEAD_BYTES + bytes) / 65536;
    const f = setup(2, 50, (bytes) => 2 * msPer(bytes));
    Array.from({ length: 16 }, f.join);
    const small = 'a'.repeat(2000); // ~0.56 ms a shard of two
    f.fanout.publish(f.frame(small));
    await pollTurn();
    await pollTurn();
    f.fanout.publish(f.frame(small)); // timed: all 8 shards (~4.5 ms) fit in the 50 ms slice
    expect(f.writes.filter((w) => w.frame === small).length).toBe(16);
    // 600 KB: ~19 ms a shard of two, 150 ms for the 8: two shards fit in a turn, not all
    // (timed per member alone, all 8 went in this first turn).
    const big = 'b'.repeat(600_000);
    f.fanout.publish(f.frame(big));
    const firstTurn = f.writes.filter((w) => w.frame === big).length;
    expect(firstTurn).toBeLessThanOrEqual(4);
    for (let i = 0; i < 8; i++) await pollTurn();
    expect(f.writes.filter((w) => w.frame === big).map((w) => w.shard)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('a room of one shard is written at once, done included', () => {
    const { fanout, writes, join, frame } = setup(10);
    join();
    let done = false;
    fanout.publish(frame('a', () => (done = true)));
    expect(writes).toEqual([{ frame: 'a', shard: 0 }]);
    expect(done).toBe(true);
  });

  it('a frame queued during a pass starts after it, on a later turn', async () => {
    const { fanout, writes, join, frame } = setup(1);
    join();
    join();
    fanout.publish(frame('a'));
    fanout.publish(frame('b'));
    for (let i = 0; i < 6; i++) await turn();
    expect(writes).toEqual([
      { frame: 'a', shard: 0 },
      { frame: 'a', shard: 1 },
      { frame: 'b', shard: 0 },
      { frame: 'b', shard: 1 },
    ]);
  });

  it('a member joining during a pass waits for the frames in hand and gets the next one', async () => {
    const { fanout, writes, join, frame } = setup(1);
    join();
    join();
    fanout.publish(frame('a'));
    const late = join(); // mid-pass: its join covered 'a'
    expect(late.shard).toBe(-1);
    fanout.publish(frame('b')); // queued
    const later = join(); // its join covered 'b' too
    await pollTurn();
    expect(late.shard).toBe(2); // placed once 'a' reached every shard
    expect(later.shard).toBe(-1);
    for (let i = 0; i < 6; i++) await turn();
    expect(later.shard).toBe(3);
    const b = writes.filter((w) => w.frame === 'b').map((w) => w.shard);
    expect(b).toEqual([0, 1, 2]); // 'b' reached `late`, not `later`
    expect(writes.filter((w) => w.frame === 'a').map((w) => w.shard)).toEqual([0, 1]);
  });

  it("riders are handed to their own shard's publish", async () => {
    const { fanout, ridden, join, frame, setRiders } = setup(2);
    const ms = Array.from({ length: 5 }, join);
    setRiders([ms[4]!, ms[0]!, ms[1]!]);
    fanout.publish(frame('a'));
    await pollTurn();
    await turn();
    expect(ridden).toEqual([
      { shard: 0, riders: 2 },
      { shard: 2, riders: 1 },
    ]);
  });

  it('leaves empty trailing shards, refills holes first, and reports idle once empty', () => {
    const { fanout, join, idle } = setup(2);
    const ms = Array.from({ length: 5 }, join);
    fanout.left(ms[4]!.shard!);
    expect(fanout.shards).toBe(2);
    fanout.left(ms[0]!.shard!);
    expect(join().shard).toBe(0);
    for (const shard of [0, 0, 1, 1]) fanout.left(shard);
    expect(fanout.shards).toBe(0);
    expect(idle()).toBe(1);
  });

  it('a shard whose publish throws is reported; the pass ends and the next frame still goes out', async () => {
    const { fanout, writes, join, frame, failures, failOn } = setup(1);
    join();
    join();
    let done = false;
    failOn(0);
    fanout.publish(frame('a', () => (done = true)));
    failOn(undefined);
    fanout.publish(frame('b'));
    for (let i = 0; i < 6; i++) await turn();
    expect(failures).toHaveLength(1);
    expect(done).toBe(true);
    expect(writes).toEqual([
      { frame: 'a', shard: 1 },
      { frame: 'b', shard: 0 },
      { frame: 'b', shard: 1 },
    ]);
  });
});
