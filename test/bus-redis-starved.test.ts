// The Redis bus rides out a starved scheduler (redis/patience.ts): a worker whose own loop
// was stalled still gets the append reply that arrived meanwhile, and a frozen Redis costs
// reads and member counts nothing but time, while an append that waited too long is answered
// with an Error (UNAVAILABLE) and is never sent twice.
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BusOp, RoomHead } from '../src/bus/bus.js';
import { RedisStreamsBus, type RedisStreamsBusOptions } from '../src/bus/redis-streams-bus.js';
import { body, Recorder, sleep, until } from './bus-contract.js';
import { RedisServer } from './redis-server.js';
import { Patience } from '../src/bus/redis/patience.js';

let redis: RedisServer;
let admin: Redis;
beforeAll(async () => {
  redis = await RedisServer.launch();
  admin = new Redis(redis.url);
});
afterAll(async () => {
  redis?.resume();
  await admin?.quit();
  await redis?.close();
});

let n = 0;
function makeBus(prefix: string, errors: BusOp[], extra: Partial<RedisStreamsBusOptions> = {}): RedisStreamsBus {
  return new RedisStreamsBus({
    target: { url: redis.url },
    prefix,
    history: 100,
    workerId: `s${++n}`,
    heartbeatMs: 100,
    blockMs: 1000,
    partitions: 4,
    reconnectMaxMs: 200,
    commandTimeoutMs: 200,
    maxCommandTimeoutMs: 5000,
    events: { error: (op) => errors.push(op) },
    ...extra,
  });
}

/**
 * Two started buses on one prefix with short timeouts: appends wait 100–300 ms, heads, ranges
 * and controls up to 600 ms, the connection's last resort (and member counts) 1,200 ms.
 */
async function startShortPair(prefix: string, errors: BusOp[]): Promise<[RedisStreamsBus, RedisStreamsBus]> {
  const o = { commandTimeoutMs: 100, maxCommandTimeoutMs: 300 };
  const pair: [RedisStreamsBus, RedisStreamsBus] = [makeBus(prefix, errors, o), makeBus(prefix, errors, o)];
  for (const bus of pair) await bus.start(new Recorder());
  return pair;
}

/** Blocks this process's event loop for `ms` (a starved worker). */
function stall(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    /* busy */
  }
}

describe('RedisStreamsBus under a starved scheduler', () => {
  it('an append whose reply arrived while the loop was stalled succeeds', async () => {
    const errors: BusOp[] = [];
    const bus = makeBus('starved1', errors);
    await bus.start(new Recorder());
    try {
      await bus.append([{ room: 'r', entry: body() }]);
      const pending = bus.append([{ room: 'r', entry: body() }]);
      await new Promise((r) => setImmediate(r)); // the command is written (auto-pipelined on a tick)
      stall(600); // 3× the append timeout; Redis answers within a millisecond of it
      const [res] = await pending;
      expect(res).not.toBeInstanceOf(Error);
      expect((res as RoomHead).seq).toBe(2);
      expect(errors).toEqual([]);
    } finally {
      await bus.close();
    }
  });

  it('a stall longer than every timeout: the count writes, reads and appends in flight still succeed', async () => {
    const errors: BusOp[] = [];
    const [bus, peer] = await startShortPair('starved3', errors);
    try {
      await bus.append([{ room: 'r', entry: body() }]);
      for (let i = 1; i <= 4; i++) {
        bus.reportMembers(new Map([['r', i]])); // a count write in flight
        const appended = bus.append([{ room: 'r', entry: body() }]);
        const head = bus.head('r');
        await new Promise((r) => setImmediate(r)); // the commands are written
        stall(900); // 3× the longest wait; Redis answers within a millisecond of it
        const [res] = await appended;
        expect((res as RoomHead).seq).toBe(i + 1);
        expect((await head).seq).toBeGreaterThanOrEqual(i);
        await sleep(150); // a heartbeat in between
      }
      await until(() => peer.members('r') === 4, "the peer's view of the count");
      // Before: ioredis' own timer (not late-aware) fired first and failed the heartbeat.
      expect(errors).toEqual([]);
    } finally {
      await bus.close();
      await peer.close();
    }
  });

  it('a Redis frozen past the patient bound: member counts wait it out and log nothing', async () => {
    const errors: BusOp[] = [];
    const [bus, peer] = await startShortPair('starved4', errors); // freeze: 900 ms, between 600 and 1,200
    try {
      bus.reportMembers(new Map([['r', 1]]));
      await until(() => peer.members('r') === 1, "the peer's view of the count");
      redis.pause();
      try {
        bus.reportMembers(new Map([['r', 2]])); // a count write, and heartbeats, in the freeze
        await sleep(900);
      } finally {
        redis.resume();
      }
      await until(() => peer.members('r') === 2, "the peer's view after the freeze");
      expect(errors).toEqual([]);
    } finally {
      await bus.close();
      await peer.close();
    }
  });

  it('a frozen Redis: reads and counts wait it out, a late append fails once and is never resent', async () => {
    const errors: BusOp[] = [];
    const follower = makeBus('starved2', errors);
    const appender = makeBus('starved2', errors);
    const seen = new Recorder();
    await follower.start(seen);
    await appender.start(new Recorder());
    try {
      await follower.follow('room');
      await appender.append([{ room: 'room', entry: body() }]);
      await until(() => seen.seqs('room').length === 1, 'the first entry');
      redis.pause();
      let res: Array<RoomHead | Error>;
      try {
        const t0 = performance.now();
        res = await appender.append([{ room: 'room', entry: body(1) }]);
        expect(performance.now() - t0).toBeLessThan(2000);
        await sleep(1000); // heartbeats and the blocked read wait through the freeze
      } finally {
        redis.resume();
      }
      expect(res[0]).toBeInstanceOf(Error);
      // Redis had the script in its socket: it runs it once, late; the bus never sent it again.
      await until(() => seen.seqs('room').length === 2, 'the late entry', 5000);
      const [next] = await appender.append([{ room: 'room', entry: body() }]);
      expect((next as RoomHead).seq).toBe(3);
      await until(() => seen.seqs('room').length === 3, 'the entry after the freeze', 5000);
      expect(seen.seqs('room')).toEqual([1, 2, 3]);
      expect(seen.of('room')[1]!.entry.likes).toBe(1);
      expect(errors).toEqual(['append']);
      expect(seen.availability.filter((up) => !up)).toEqual([]);
    } finally {
      await follower.close();
      await appender.close();
    }
  });
});

describe('Patience', () => {
  it('follows the slowest recent round trip (×4) within its bounds, and forgets it over time', () => {
    let t = 0;
    const p = new Patience(2000, 15_000, () => t);
    expect(p.timeoutMs).toBe(2000);
    p.note(100);
    expect(p.timeoutMs).toBe(2000);
    p.note(1000);
    expect(p.timeoutMs).toBe(4000);
    p.note(60_000);
    expect(p.timeoutMs).toBe(15_000);
    t += 80_000; // 8 half-lives: 60 s → ~234 ms
    expect(p.timeoutMs).toBe(2000);
  });

});

/** A worker process (starved-worker.mjs) that reported `count` members of `room`; SIGKILL it to kill it. */
async function peerProcess(prefix: string, workerId: string, room: string, count: number) {
  const script = fileURLToPath(new URL('./starved-worker.mjs', import.meta.url));
  const proc = spawn(process.execPath, [script, redis.url, prefix, workerId, room, String(count)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout! });
  const said = (what: string) => new Promise<void>((resolve) => lines.on('line', (l) => l === what && resolve()));
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  await said('ready');
  return {
    proc,
    said,
    async stop() {
      proc.stdin!.end();
      await exited;
    },
    async kill() {
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

describe('member counts of a starved or dead peer', () => {
  it('a peer process stalled for 20 heartbeats is still counted: its member hash outlives the stall', async () => {
    const errors: BusOp[] = [];
    const bus = makeBus('starved-peer', errors);
    await bus.start(new Recorder());
    bus.reportMembers(new Map([['live', 100]]));
    const peer = await peerProcess('starved-peer', 'stalling', 'live', 500);
    try {
      await until(() => bus.members('live') === 600, 'both workers counted');
      // The peer's loop stalls for 2 s while this worker beats every 100 ms: with a hash TTL of
      // 3 beats, this worker counted the peer's 500 members gone after ~0.3 s.
      let least = Infinity;
      const sampler = setInterval(() => (least = Math.min(least, bus.members('live'))), 20);
      const stalled = peer.said('stalled');
      peer.proc.stdin!.write('stall 2000\n');
      await stalled;
      await sleep(500); // its first heartbeats after the stall
      clearInterval(sampler);
      expect(least).toBe(600);
      expect(errors).toEqual([]);
    } finally {
      await peer.stop();
      await bus.close();
    }
  });

  it('a killed peer named by forgetWorkers stops counting at once; one nobody names, when its TTL lapses', async () => {
    const errors: BusOp[] = [];
    const bus = makeBus('dead-peer', errors);
    await bus.start(new Recorder());
    bus.reportMembers(new Map([['live', 100]]));
    const named = await peerProcess('dead-peer', 'named', 'live', 300);
    const unnamed = await peerProcess('dead-peer', 'unnamed', 'live', 500);
    try {
      await until(() => bus.members('live') === 900, 'three workers counted');
      await named.kill();
      await unnamed.kill();
      const killedAt = performance.now();
      await bus.forgetWorkers(['named']);
      expect(bus.members('live')).toBe(600);
      expect(await admin.exists('dead-peer:members:{named}')).toBe(0);
      expect(await admin.hexists('dead-peer:beats', 'named')).toBe(0);
      // The unnamed one counts until its hash's TTL lapses: 30 beats of 100 ms after its last
      // refresh (every 5th beat), so 25-30 beats after it died.
      await sleep(1500);
      expect(bus.members('live')).toBe(600);
      await until(() => bus.members('live') === 100, 'the unnamed dead peer dropped', 6000);
      expect(performance.now() - killedAt).toBeGreaterThan(2400);
      expect(errors).toEqual([]);
    } finally {
      await bus.close();
    }
  });

  it('a worker that stops cleanly takes its counts and mark away at once', async () => {
    const bus = makeBus('leaving-peer', []);
    await bus.start(new Recorder());
    bus.reportMembers(new Map([['live', 100]]));
    const peer = await peerProcess('leaving-peer', 'leaving', 'live', 500);
    await until(() => bus.members('live') === 600, 'both workers counted');
    await peer.stop();
    try {
      expect(await admin.exists('leaving-peer:members:{leaving}')).toBe(0);
      expect(await admin.hexists('leaving-peer:beats', 'leaving')).toBe(0);
      await until(() => bus.members('live') === 100, 'the stopped peer dropped', 1000);
    } finally {
      await bus.close();
    }
  });
});
