// RedisStreamsBus on a real Redis Cluster (3 masters, 3 replicas): the shared contract, one
// slot per room, and a master killed mid-traffic (the replica takes over; the bus recovers
// without a restart).
import { Cluster } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RoomHead } from '../src/bus/bus.js';
import { Keys } from '../src/bus/redis/keys.js';
import { RedisStreamsBus, type RedisStreamsBusOptions } from '../src/bus/redis-streams-bus.js';
import { body, busContract, CONTRACT_HISTORY, Recorder, sleep, until } from './bus-contract.js';
import { RedisCluster } from './redis-cluster.js';

let prefixes = 0;
const nextPrefix = () => `c${process.pid}x${++prefixes}`;
let workers = 0;
let cluster: RedisCluster;

function makeBus(prefix: string, extra: Partial<RedisStreamsBusOptions> = {}): RedisStreamsBus {
  return new RedisStreamsBus({
    target: { cluster: cluster.nodes },
    prefix,
    history: CONTRACT_HISTORY,
    workerId: `cw${++workers}`,
    heartbeatMs: 100,
    blockMs: 1000,
    partitions: 8,
    reconnectMaxMs: 200,
    commandTimeoutMs: 1000,
    ...extra,
  });
}

beforeAll(async () => {
  cluster = await RedisCluster.launch();
}, 30_000);
afterAll(async () => {
  await cluster?.close();
});

busContract('RedisStreamsBus on a Redis Cluster', async () => {
  const prefix = nextPrefix();
  const bus = makeBus(prefix);
  return { bus, cleanup: () => bus.close(), peer: async () => makeBus(prefix) };
});

describe('RedisStreamsBus on a Redis Cluster', () => {
  const open: RedisStreamsBus[] = [];
  afterEach(async () => {
    for (const b of open.splice(0)) await b.close();
  });
  async function started(prefix: string, extra: Partial<RedisStreamsBusOptions> = {}) {
    const bus = makeBus(prefix, extra);
    open.push(bus);
    const rec = new Recorder();
    await bus.start(rec);
    return { bus, rec };
  }

  it("keeps each room's keys in its partition's slot, and spreads partitions over the masters", async () => {
    const prefix = nextPrefix();
    const k = new Keys(prefix, 8);
    const { bus } = await started(prefix);
    const rooms = Array.from({ length: 40 }, (_, i) => `spread-${i}`);
    await bus.append(rooms.map((room) => ({ room, entry: body() })));
    const admin = new Cluster(cluster.nodes);
    admin.on('error', () => undefined);
    try {
      const slotOf = async (key: string) => Number(await admin.call('CLUSTER', 'KEYSLOT', key));
      const masters = new Set<number>();
      for (const room of rooms) {
        const slot = await slotOf(k.stream(k.partitionOf(room)));
        expect(await slotOf(k.meta(room))).toBe(slot);
        expect(await slotOf(k.log(room))).toBe(slot);
        masters.add(await cluster.masterOf(k.meta(room)));
      }
      expect(masters.size).toBeGreaterThan(1);
    } finally {
      admin.disconnect();
    }
  });

  it('recovers from a master killed mid-traffic: appends fail during the failover, then every room accepts and delivers again', async () => {
    const prefix = nextPrefix();
    const k = new Keys(prefix, 8);
    const { bus: reader, rec } = await started(prefix);
    const { bus: writer } = await started(prefix);
    const rooms = Array.from({ length: 16 }, (_, i) => `fo-${i}`);
    const heads = new Map<string, RoomHead>();
    for (const room of rooms) heads.set(room, await reader.follow(room));
    const victimRoom = rooms[0]!;
    const victim = await cluster.masterOf(k.meta(victimRoom));
    // Traffic throughout: one append round every 50 ms; record what was acked.
    const acked = new Map<string, number[]>(rooms.map((r) => [r, []]));
    let failed = 0;
    let stop = false;
    const traffic = (async () => {
      while (!stop) {
        const res = await writer.append(rooms.map((room) => ({ room, entry: body() })));
        res.forEach((r, i) => (r instanceof Error ? failed++ : acked.get(rooms[i]!)!.push(r.seq)));
        await sleep(50);
      }
    })();
    await sleep(500);
    await cluster.kill(victim, k.meta(victimRoom));
    // After the failover every room takes appends again.
    await until(async () => (await writer.append([{ room: victimRoom, entry: body() }]).then(([r]) => !(r instanceof Error))), 'appends after failover', 15_000);
    const mark = new Map(rooms.map((r) => [r, acked.get(r)!.length]));
    await until(() => rooms.every((r) => acked.get(r)!.length >= mark.get(r)! + 3), 'three more acked rounds', 10_000);
    stop = true;
    await traffic;
    expect(failed).toBeGreaterThan(0); // the outage was real
    // Every room delivers again, entries after the failover included: per epoch (a replica that
    // had not caught up starts a new one), contiguous seqs with nothing skipped.
    for (const room of rooms) {
      const last = acked.get(room)!.at(-1)!;
      await until(() => rec.of(room).some((e) => e.entry.seq === last), `delivery in ${room}`, 10_000);
      const epochs: Array<{ epoch: string; seqs: number[] }> = [];
      for (const { epoch, entry } of rec.of(room)) {
        if (epochs.at(-1)?.epoch !== epoch) epochs.push({ epoch, seqs: [] });
        epochs.at(-1)!.seqs.push(entry.seq);
      }
      expect(new Set(epochs.map((e) => e.epoch)).size).toBe(epochs.length);
      epochs.forEach(({ seqs }, i) => {
        const from = i === 0 ? heads.get(room)!.seq + 1 : 1;
        expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, j) => from + j));
      });
    }
  }, 60_000);
});
