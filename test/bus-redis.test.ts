// RedisStreamsBus against real redis-server processes: the shared contract, then what only a
// networked bus has — key layout, TTLs, a Redis restarted empty, outages and reconnects.
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RoomHead } from '../src/bus/bus.js';
import { Keys } from '../src/bus/redis/keys.js';
import { RedisStreamsBus, type RedisStreamsBusOptions } from '../src/bus/redis-streams-bus.js';
import { body, busContract, CONTRACT_HISTORY, Recorder, sleep, until } from './bus-contract.js';
import { RedisServer } from './redis-server.js';

const HEARTBEAT_MS = 100;
let prefixes = 0;
/** Each bus namespace gets its own key prefix, so tests never see each other's keys. */
const nextPrefix = () => `t${process.pid}x${++prefixes}`;
let workers = 0;

function makeBus(url: string, prefix: string, extra: Partial<RedisStreamsBusOptions> = {}): RedisStreamsBus {
  return new RedisStreamsBus({
    target: { url },
    prefix,
    history: CONTRACT_HISTORY,
    workerId: `w${++workers}`,
    heartbeatMs: HEARTBEAT_MS,
    blockMs: 1000,
    partitions: 8,
    reconnectMaxMs: 200,
    commandTimeoutMs: 1000,
    ...extra,
  });
}

let shared: RedisServer;
beforeAll(async () => {
  shared = await RedisServer.launch();
});
afterAll(async () => {
  await shared?.close();
});

busContract('RedisStreamsBus', async () => {
  const prefix = nextPrefix();
  const bus = makeBus(shared.url, prefix);
  return { bus, cleanup: () => bus.close(), peer: async () => makeBus(shared.url, prefix) };
});

describe('RedisStreamsBus specifics', () => {
  let admin: Redis;
  const open: RedisStreamsBus[] = [];
  beforeAll(() => {
    admin = new Redis(shared.url);
  });
  afterAll(async () => {
    await admin.quit();
  });
  afterEach(async () => {
    for (const b of open.splice(0)) await b.close();
  });
  async function started(prefix: string, extra: Partial<RedisStreamsBusOptions> = {}, url = shared.url) {
    const bus = makeBus(url, prefix, extra);
    open.push(bus);
    const rec = new Recorder();
    await bus.start(rec);
    return { bus, rec };
  }

  it('keeps a room log (ids = seqs, trimmed near history), its meta and its partition stream in one hash slot', async () => {
    const prefix = nextPrefix();
    const k = new Keys(prefix, 8);
    const { bus } = await started(prefix);
    for (let i = 0; i < 300; i++) await bus.append([{ room: 'keys', entry: body() }]);
    const tag = `{p${k.partitionOf('keys')}}`;
    for (const key of [k.meta('keys'), k.log('keys'), k.stream(k.partitionOf('keys'))]) expect(key).toContain(tag);
    expect(await admin.hgetall(k.meta('keys'))).toEqual({ s: '300', e: (await bus.head('keys')).epoch });
    const last = await admin.xrevrange(k.log('keys'), '+', '-', 'COUNT', 1);
    expect(last[0]?.[0]).toBe('300-1');
    // MAXLEN ~ trims whole stream nodes (100 entries by default): bounded, not exact.
    const len = await admin.xlen(k.log('keys'));
    expect(len).toBeGreaterThanOrEqual(CONTRACT_HISTORY);
    expect(len).toBeLessThanOrEqual(CONTRACT_HISTORY + 100);
    const part = await admin.xrevrange(k.stream(k.partitionOf('keys')), '+', '-', 'COUNT', 1);
    expect(part[0]?.[1].slice(0, 6)).toEqual(['r', 'keys', 's', '300', 'e', (await bus.head('keys')).epoch]);
  });

  it('costs one Redis call per appended room and reads partitions, not rooms', async () => {
    const prefix = nextPrefix();
    const { bus: reader } = await started(prefix);
    const { bus: writer } = await started(prefix);
    const rooms = Array.from({ length: 200 }, (_, i) => `many-${i}`);
    for (const room of rooms) await reader.follow(room);
    await sleep(300);
    const before = await commandStats(admin);
    const rounds = 10;
    for (let i = 0; i < rounds; i++) await writer.append(rooms.map((room) => ({ room, entry: body() })));
    await sleep(300);
    const after = await commandStats(admin);
    const calls = (cmd: string) => (after[cmd] ?? 0) - (before[cmd] ?? 0);
    // One script call per appended entry: every room and every round.
    expect(calls('evalsha') + calls('eval')).toBe(rooms.length * rounds);
    // The reader's XREADs stay few (they read partitions), whatever the room count: no per-room reads.
    expect(calls('xread')).toBeLessThan(rounds * 4);
    expect(calls('xrange') + calls('xrevrange') + calls('get')).toBe(0);
  });

  it('expires every key of a room historyTtl after its last append; the next append starts a new epoch', async () => {
    const prefix = nextPrefix();
    const { bus } = await started(prefix, { historyTtlMs: 600 });
    const { bus: other, rec } = await started(prefix, { historyTtlMs: 600 });
    const baseline = (await admin.keys(`${prefix}:*`)).sort();
    const head = await other.follow('brief');
    const [first] = await bus.append([{ room: 'brief', entry: body() }]);
    await bus.control({ type: 'mute', room: 'brief', untilMs: 1 });
    await until(() => rec.of('brief').length === 1, 'live entry');
    expect((await admin.keys(`${prefix}:*`)).length).toBeGreaterThan(baseline.length);
    for (const key of await admin.keys(`${prefix}:*{p*`)) {
      const ttl = await admin.pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(600);
    }
    await until(async () => (await admin.keys(`${prefix}:*{p*`)).length === 0 && (await admin.exists(`${prefix}:control`)) === 0, 'keys expired', 3000);
    // Member hashes and the heartbeat marks come and go with heartbeats; nothing else is left.
    const left = (await admin.keys(`${prefix}:*`)).filter((k) => !k.includes(':members:') && !k.endsWith(':beats'));
    expect(left.sort()).toEqual(baseline.filter((k) => !k.includes(':members:') && !k.endsWith(':beats')));
    // Recovery after expiry: a new epoch, nothing to replay.
    const gone = await bus.range('brief', 1, 10);
    expect(gone.epoch).not.toBe((first as RoomHead).epoch);
    expect(gone).toMatchObject({ entries: [], head: 0 });
    const [next] = await bus.append([{ room: 'brief', entry: body() }]);
    expect(next).toEqual({ epoch: gone.epoch, seq: 1 });
    // The follower, still in the quiet room, carries on under the new epoch.
    await until(() => rec.of('brief').length === 2, 'entry of the new epoch');
    expect(rec.of('brief').map((e) => [e.epoch === head.epoch, e.entry.seq])).toEqual([
      [true, 1],
      [false, 1],
    ]);
  });

  it('refuses to start against a deployment with another partition count', async () => {
    const prefix = nextPrefix();
    await started(prefix);
    const bus = makeBus(shared.url, prefix, { partitions: 16 });
    await expect(bus.start(new Recorder())).rejects.toThrow(/uses 8 bus partitions; this node is configured with 16/);
    await bus.close();
  });

  it('member counts cost Redis nothing per room while they stay the same', async () => {
    const prefix = nextPrefix();
    const { bus: a } = await started(prefix);
    const { bus: b } = await started(prefix);
    const rooms = new Map(Array.from({ length: 500 }, (_, i) => [`r${i}`, 2] as [string, number]));
    a.reportMembers(rooms);
    b.reportMembers(new Map([['r1', 1]]));
    await until(() => b.members('r499') === 2 && a.members('r1') === 3, 'counts seen by the other worker');
    const before = await commandStats(admin);
    const sent = await netOutput(admin);
    for (let i = 0; i < 5; i++) {
      a.reportMembers(new Map(rooms)); // the same counts again: nothing to write
      await sleep(HEARTBEAT_MS);
    }
    const out = (await netOutput(admin)) - sent; // includes one INFO reply (~1.5 KB)
    const after = await commandStats(admin);
    const calls = (cmd: string) => (after[cmd] ?? 0) - (before[cmd] ?? 0);
    expect(calls('hdel') + calls('del')).toBe(0);
    // Each heartbeat writes the worker's mark (one field) and reads the marks (one small hash):
    // no room's count is written, and no worker's 500-room hash (~6 KB) is read again.
    expect(calls('hset')).toBeLessThanOrEqual(calls('hgetall') + 2);
    expect(out).toBeLessThan(calls('hgetall') * 200 + 4000);
    // One room changes: only it is written, and the other worker reads the hash once.
    a.reportMembers(new Map([...rooms, ['r7', 5]]));
    await until(() => b.members('r7') === 5, 'changed count');
    expect(b.members('r8')).toBe(2);
  });

  it('a heartbeat costs each worker the same few commands, however many workers there are', async () => {
    const perWorkerBeat = async (n: number) => {
      const prefix = nextPrefix();
      const buses = await Promise.all(Array.from({ length: n }, () => started(prefix)));
      buses.forEach(({ bus }, i) => bus.reportMembers(new Map([[`room-${i}`, 1]])));
      await until(() => buses.every(({ bus }) => Array.from({ length: n }, (_, i) => bus.members(`room-${i}`)).every((c) => c === 1)), 'every count seen');
      const before = await commandStats(admin);
      await sleep(HEARTBEAT_MS * 10);
      const after = await commandStats(admin);
      const total = Object.keys(after).reduce((sum, cmd) => sum + after[cmd]! - (before[cmd] ?? 0), 0);
      const hgets = (after.hget ?? 0) - (before.hget ?? 0);
      for (const { bus } of buses.splice(0)) await bus.close();
      open.length = 0;
      return { perBeat: total / n / 10, hgets };
    };
    const two = await perWorkerBeat(2);
    const ten = await perWorkerBeat(10);
    // Asking each worker's version apart was W - 1 HGETs per worker and heartbeat.
    expect(ten.hgets).toBe(0);
    expect(ten.perBeat).toBeLessThan(two.perBeat + 3);
  });

  /** One worker that reported `counts` and has written them (two heartbeats later). */
  async function reportedCounts(workerId: string, counts: Array<[string, number]>) {
    const prefix = nextPrefix();
    const { bus } = await started(prefix, { workerId });
    bus.reportMembers(new Map(counts));
    await until(() => bus.members(counts[0]![0]) === counts[0]![1], 'own count');
    await sleep(HEARTBEAT_MS * 2);
    return { prefix, bus };
  }

  it('an unchanged heartbeat writes only its mark, and the TTLs every 5th beat; a hash gone between beats is written whole again', async () => {
    const { prefix } = await reportedCounts('steady', [['a', 3], ['b', 1]]);
    const before = await commandStats(admin);
    await sleep(HEARTBEAT_MS * 10);
    const after = await commandStats(admin);
    const calls = (cmd: string) => (after[cmd] ?? 0) - (before[cmd] ?? 0);
    // ~10 beats: ~10 marks, ~2 refreshes of the two TTLs (it was two PEXPIREs every beat).
    expect(calls('hset')).toBeGreaterThanOrEqual(8);
    expect(calls('pexpire')).toBeGreaterThanOrEqual(2);
    expect(calls('pexpire')).toBeLessThanOrEqual(6);
    expect(calls('multi')).toBe(0);
    expect(calls('hdel') + calls('del')).toBe(0);
    // A hash that lapsed alone: the next TTL refresh answers 0, and every count is written again.
    await admin.del(`${prefix}:members:{steady}`);
    await until(async () => (await admin.hget(`${prefix}:members:{steady}`, 'a')) === '3', 'hash written again');
    expect(await admin.hgetall(`${prefix}:members:{steady}`)).toEqual({ a: '3', b: '1', '#v': expect.any(String) });
    // Counts and marks lost together (a Redis restarted empty): the beat whose HSET finds its
    // mark gone writes the counts again at once, not only on the next TTL refresh (a 1 in 5
    // chance per round without that check; three rounds).
    for (let round = 0; round < 3; round++) {
      await admin.del(`${prefix}:members:{steady}`, `${prefix}:beats`);
      await until(async () => (await admin.hexists(`${prefix}:beats`, 'steady')) === 1, 'the next mark', HEARTBEAT_MS * 3);
      await until(async () => (await admin.hget(`${prefix}:members:{steady}`, 'a')) === '3', 'hash written with the mark', HEARTBEAT_MS / 2);
      await until(async () => (await admin.pttl(`${prefix}:beats`)) > 0, 'the marks expire again', HEARTBEAT_MS / 2);
    }
  });

  it('keeps member counts in a per-worker hash that outlives 30 missed heartbeats; a clean stop removes it', async () => {
    const { prefix, bus } = await reportedCounts('solo', [['big', 1000], ['small', 1]]);
    expect(await admin.hgetall(`${prefix}:members:{solo}`)).toEqual({ big: '1000', small: '1', '#v': expect.any(String) });
    const ttl = await admin.pttl(`${prefix}:members:{solo}`);
    // Refreshed every 5th beat: 25-30 beats left.
    expect(ttl).toBeGreaterThan(HEARTBEAT_MS * 24);
    expect(ttl).toBeLessThanOrEqual(HEARTBEAT_MS * 30);
    expect(await admin.hexists(`${prefix}:beats`, 'solo')).toBe(1);
    await bus.close();
    expect(await admin.exists(`${prefix}:members:{solo}`)).toBe(0);
    expect(await admin.hexists(`${prefix}:beats`, 'solo')).toBe(0);
  });

  it('picks up a room log lost under a follow (new epoch) without a reconnect', async () => {
    const prefix = nextPrefix();
    // Both notice through the partition stream: its entries carry their epoch.
    const { bus: writer, rec: wrec } = await started(prefix);
    const { bus: reader, rec } = await started(prefix);
    const head = await reader.follow('lost');
    expect(await writer.follow('lost')).toEqual(head);
    await writer.append([{ room: 'lost', entry: body() }]);
    await until(() => rec.of('lost').length === 1 && wrec.of('lost').length === 1, 'first entry');
    const k = new Keys(prefix, 8);
    await admin.del(k.meta('lost'), k.log('lost'));
    const [after] = await writer.append([{ room: 'lost', entry: body() }]);
    const fresh = after as RoomHead;
    expect(fresh.seq).toBe(1);
    expect(fresh.epoch).not.toBe(head.epoch);
    await until(() => rec.of('lost').length === 2 && wrec.of('lost').length === 2, 'entry of the new epoch');
    for (const r of [rec, wrec]) {
      expect(r.of('lost').map((e) => [e.epoch, e.entry.seq])).toEqual([
        [head.epoch, 1],
        [fresh.epoch, 1],
      ]);
    }
  });

  it('fails start() clearly when Redis is unreachable', async () => {
    const server = await RedisServer.launch();
    await server.close();
    const bus = makeBus(server.url, nextPrefix());
    await expect(bus.start(new Recorder())).rejects.toThrow(/cannot reach redis:\/\/127\.0\.0\.1/);
    await bus.close();
  });

  describe('with its own redis-server', () => {
    let server: RedisServer;
    beforeAll(async () => {
      server = await RedisServer.launch();
    });
    afterAll(async () => {
      await server?.close();
    });
    afterEach(async () => {
      // A failed outage test must not take the server down for the next one.
      if (!server.running) await server.start();
    });

    it('survives a Redis restarted empty: a new epoch, and following continues', async () => {
      const prefix = nextPrefix();
      // Appends by another worker: the reconnect must notice.
      const { bus, rec } = await started(prefix, {}, server.url);
      const { bus: writer } = await started(prefix, {}, server.url);
      const head = await bus.follow('phoenix');
      for (let i = 0; i < 3; i++) await writer.append([{ room: 'phoenix', entry: body() }]);
      await until(() => rec.of('phoenix').length === 3, 'entries before the restart');
      await server.restart();
      await until(() => rec.availability.includes(false), 'unavailability');
      await until(() => bus.available() && writer.available(), 'availability again', 5000);
      const [res] = await writer.append([{ room: 'phoenix', entry: body() }]);
      if (res instanceof Error || !res) throw res ?? new Error('no result');
      expect(res.seq).toBe(1);
      expect(res.epoch).not.toBe(head.epoch);
      await writer.append([{ room: 'phoenix', entry: body() }]);
      await until(() => rec.of('phoenix').length === 5, 'entries of the new epoch');
      expect(rec.of('phoenix').map((e) => [e.epoch === head.epoch, e.entry.seq])).toEqual([
        [true, 1],
        [true, 2],
        [true, 3],
        [false, 1],
        [false, 2],
      ]);
      expect((await bus.range('phoenix', 0, 10)).epoch).toBe(res.epoch);
    });

    it('while Redis is down: append returns Errors and available() is false; then it recovers and reading resumes', async () => {
      const prefix = nextPrefix();
      const { bus, rec } = await started(prefix, {}, server.url);
      const { bus: writer } = await started(prefix, {}, server.url);
      const head = await bus.follow('outage');
      for (let i = 0; i < 3; i++) await writer.append([{ room: 'outage', entry: body() }]);
      await until(() => rec.of('outage').length === 3, 'entries before the outage');

      await server.stop({ save: true }); // data survives, as with persistence or a failover
      await until(() => !bus.available() && !writer.available(), 'unavailability');
      expect(rec.availability).toEqual([false]);
      const t0 = Date.now();
      const failed = await writer.append([{ room: 'outage', entry: body() }, { room: 'other', entry: body() }]);
      expect(failed).toHaveLength(2);
      for (const r of failed) expect(r).toBeInstanceOf(Error);
      expect(Date.now() - t0).toBeLessThan(500); // fails fast, no queueing behind the outage
      await expect(writer.control({ type: 'mute', room: 'outage', untilMs: 1 })).rejects.toThrow();
      await expect(writer.range('outage', 0, 10)).rejects.toThrow();

      await server.start();
      await until(() => bus.available() && writer.available(), 'availability again', 5000);
      expect(rec.availability).toEqual([false, true]);
      const after = await writer.append([{ room: 'outage', entry: body() }]);
      expect(after).toEqual([{ epoch: head.epoch, seq: 4 }]);
      await writer.append([{ room: 'outage', entry: body() }]);
      await until(() => rec.of('outage').length === 5, 'entries after the outage');
      await sleep(300);
      expect(rec.seqs('outage')).toEqual([1, 2, 3, 4, 5]);
      expect(new Set(rec.of('outage').map((e) => e.epoch))).toEqual(new Set([head.epoch]));
    });

    it('resumes reading from the last delivered seq after its reader connection drops', async () => {
      const prefix = nextPrefix();
      const workerId = `reader-${prefix}`;
      const { bus, rec } = await started(prefix, { workerId }, server.url);
      const { bus: writer } = await started(prefix, {}, server.url);
      await bus.follow('blip');
      await writer.append([{ room: 'blip', entry: body() }]);
      await until(() => rec.of('blip').length === 1, 'first entry');
      const kill = new Redis(server.url);
      try {
        // Kill only the reader; entries appended before it reconnects must still arrive, once.
        const clients = await kill.client('LIST');
        const line = String(clients).split('\n').find((l) => l.includes(`name=roomcast:${workerId}:reader`));
        const id = /\bid=(\d+)/.exec(line ?? '')?.[1];
        expect(id).toBeDefined();
        await kill.client('KILL', 'ID', id!);
        for (let i = 0; i < 3; i++) await writer.append([{ room: 'blip', entry: body() }]);
      } finally {
        await kill.quit();
      }
      await until(() => rec.of('blip').length === 4, 'entries written while the reader was away');
      await sleep(300);
      expect(rec.seqs('blip')).toEqual([1, 2, 3, 4]);
    });
  });
});

/** Calls per command from INFO commandstats. */
/** Bytes Redis has sent to its clients so far. */
async function netOutput(admin: Redis): Promise<number> {
  return Number(/total_net_output_bytes:(\d+)/.exec(String(await admin.info('stats')))?.[1]);
}

async function commandStats(admin: Redis): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const m of String(await admin.info('commandstats')).matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) out[m[1]!] = Number(m[2]);
  return out;
}
