// A 2-worker roomcast node on a real Redis Cluster (3 masters, 3 replicas): members on both
// workers see each other's messages, and a master killed with kill -9 mid-traffic is ridden
// out without a restart: during the failover API posts get 503 and chat gets UNAVAILABLE
// (never an ack); afterwards every room accepts and delivers again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keys } from '../src/bus/redis/keys.js';
import { RedisCluster } from './redis-cluster.js';
import {
  Supervisor,
  closeAll,
  destroyAll,
  dumpLogsOnFailure,
  http,
  pollUntil,
  sendChat,
  sleep,
  spreadMembers,
  type Member,
} from './cluster-helpers.js';

let cluster: RedisCluster | undefined;
let sup: Supervisor | undefined;
const opened: Member[] = [];
dumpLogsOnFailure(() => [sup]);

beforeAll(async () => {
  cluster = await RedisCluster.launch();
  sup = await Supervisor.start({ redisCluster: cluster.seeds, args: ['--chat-rate', '100', '--chat-burst', '100', '--bus-partitions', '16'], name: 'node' });
}, 60_000);

afterAll(async () => {
  await closeAll(opened).catch(() => undefined);
  await destroyAll(sup);
  await cluster?.close();
}, 20_000);

const ROOMS = ['show-a', 'show-b', 'show-c', 'show-d'];

describe('roomcast on a Redis Cluster', () => {
  it('carries a room across workers, and rides out a master failover', async () => {
    const port = sup!.port;
    const members = new Map<string, Member[]>();
    for (const room of ROOMS) {
      const ms = await spreadMembers(port, `${room}-m`, 2, { room, workers: 2, minPerWorker: 1 });
      members.set(room, ms);
      opened.push(...ms);
    }
    // Everyone sees an API post in every room, whichever worker took it.
    for (const room of ROOMS) expect((await http(port, 'POST', `/v1/rooms/${room}/messages`, { kind: 'system', body: `hello ${room}` })).status).toBe(202);
    for (const room of ROOMS) {
      for (const m of members.get(room)!) await m.client.waitFor((f) => f.op === 'batch' && JSON.stringify(f.msgs).includes(`hello ${room}`), 5000);
    }

    const k = new Keys('rc', 16);
    const victimRoom = ROOMS[0]!;
    const victim = await cluster!.masterOf(k.meta(victimRoom));
    const statuses: number[] = [];
    const chatReplies: string[] = [];
    let n = 0;
    let stop = false;
    const sender = members.get(victimRoom)![0]!;
    const posts = (async () => {
      while (!stop) {
        const r = await http(port, 'POST', `/v1/rooms/${victimRoom}/messages`, { kind: 'gift', body: `g${++n}` }).catch(() => undefined);
        if (r) statuses.push(r.status);
        await sleep(50);
      }
    })();
    const chats = (async () => {
      for (let i = 1; !stop; i++) {
        const c = await sendChat(sender.client, victimRoom, `c${i}`, 10_000 + i, 8000).catch(() => undefined);
        if (c) chatReplies.push(c.op === 'ack' ? 'ack' : String(c.code));
        await sleep(50);
      }
    })();
    const traffic = Promise.all([posts, chats]);
    await sleep(500);
    await cluster!.kill(victim, k.meta(victimRoom));
    // After the failover: posts accepted again in every room.
    for (const room of ROOMS) {
      await pollUntil(`202 in ${room}`, async () => (await http(port, 'POST', `/v1/rooms/${room}/messages`, { kind: 'system', body: `after ${room}` })).status === 202, 20_000, 200);
    }
    stop = true;
    await traffic;
    expect(statuses.every((s) => s === 202 || s === 503), `statuses ${statuses.join(',')}`).toBe(true);
    expect(statuses).toContain(503);
    expect(chatReplies.every((r) => r === 'ack' || r === 'UNAVAILABLE'), `chat ${chatReplies.join(',')}`).toBe(true);
    expect(chatReplies).toContain('UNAVAILABLE');
    // Every member of every room gets what was posted after the failover.
    for (const room of ROOMS) {
      for (const m of members.get(room)!) await m.client.waitFor((f) => f.op === 'batch' && JSON.stringify(f.msgs).includes(`after ${room}`), 10_000);
    }
    expect(sup!.exitCode).toBeUndefined();
  }, 90_000);
});
