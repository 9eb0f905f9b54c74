// Cluster-wide sessions (PROTOCOL §9) on two nodes (2 workers each) and one real Redis:
//   1. POST /v1/users/:uid/disconnect on node A closes the user's sockets on both nodes
//      (bye, then 4011) and refuses its upgrades with 403 BANNED on every worker of both;
//   2. per-user limits hold per node: one user's 9 sockets spread over a node's 2 workers
//      get at most the documented chat burst (3), not a burst per worker;
//   3. --max-conns-per-user caps a user's sockets per node whichever worker an upgrade hits.
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer } from './redis-server.js';
import { wsUrl } from './helpers.js';
import {
  Supervisor,
  closeAll,
  destroyAll,
  dumpLogsOnFailure,
  http,
  member,
  sendChat,
  sleep,
  token,
  type Member,
} from './cluster-helpers.js';

const CAP = 4;

let redis: RedisServer | undefined;
let nodeA: Supervisor | undefined;
let nodeB: Supervisor | undefined;
const opened: Member[] = [];
dumpLogsOnFailure(() => [nodeA, nodeB]);

beforeAll(async () => {
  redis = await RedisServer.launch();
  [nodeA, nodeB] = await Promise.all([
    Supervisor.start({ redis: redis.url, args: ['--max-conns-per-user', '20', '--join-rate', '100', '--join-burst', '100'], name: 'node A' }),
    Supervisor.start({ redis: redis.url, args: ['--max-conns-per-user', String(CAP)], name: 'node B' }),
  ]);
}, 60_000);

afterAll(async () => {
  await closeAll(opened).catch(() => undefined);
  await destroyAll(nodeA, nodeB);
  await redis?.close();
}, 20_000);

const A = () => nodeA!;
const B = () => nodeB!;

/** The HTTP status of one upgrade attempt (101 when it opened; the socket is closed again). */
async function upgradeStatus(port: number, uid: string): Promise<{ status: number; body: string }> {
  const t = await token({ uid });
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(port, { token: t }));
    ws.once('open', () => {
      ws.close();
      resolve({ status: 101, body: '' });
    });
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    ws.once('error', reject);
  });
}

/** `n` sockets of one user on `port`, with both workers holding some (the kernel picks). */
async function spreadSockets(port: number, uid: string, n: number): Promise<Member[]> {
  const out: Member[] = [];
  for (let attempt = 0; attempt < 60; attempt++) {
    const workers = new Set(out.map((m) => m.worker));
    if (out.length === n && workers.size === 2) return out;
    const m = await member(port, uid);
    const onlyOne = out.length > 0 && workers.size === 1 && workers.has(m.worker);
    if (out.length >= n - 1 && onlyOne) {
      await closeAll([m]);
      continue;
    }
    if (out.length < n) out.push(m);
    else await closeAll([m]);
  }
  throw new Error(`could not spread ${n} sockets of ${uid} over two workers`);
}

describe('user disconnect and ban across nodes', () => {
  it('closes the user on every node (bye, 4011) and refuses its upgrades on every worker for `seconds`', async () => {
    const uid = 'dc-victim';
    const onA = await spreadSockets(A().port, uid, 2);
    const onB = [await member(B().port, uid)];
    const bystander = await member(B().port, 'dc-bystander');
    opened.push(...onA, ...onB, bystander);
    const res = await http(A().port, 'POST', `/v1/users/${uid}/disconnect`, { reason: 'terms of service', seconds: 3 });
    expect({ status: res.status, json: res.json }, res.text).toEqual({ status: 200, json: { ok: true } });
    for (const m of [...onA, ...onB]) {
      expect(await m.client.closed, `${m.node}`).toBe(4011);
      expect(m.client.frames.find((f) => f.op === 'bye'), m.node).toMatchObject({ reason: 'terms of service' });
    }
    // Every attempt on either node is refused (the kernel spreads them over both workers).
    for (const port of [A().port, B().port]) {
      for (let i = 0; i < 6; i++) {
        const r = await upgradeStatus(port, uid);
        expect(r.status).toBe(403);
        expect(JSON.parse(r.body)).toEqual({ error: { code: 'BANNED', message: expect.any(String) } });
      }
    }
    expect(bystander.client.closeCode).toBeUndefined();
    await sleep(3200);
    for (const port of [A().port, B().port]) expect((await upgradeStatus(port, uid)).status).toBe(101);
  });
});

describe('per-user limits per node', () => {
  it('one user with 9 sockets over two workers gets at most the chat burst of 3, not one per worker', async () => {
    const uid = 'burst-user';
    const room = 'burst-room';
    const socks = await spreadSockets(A().port, uid, 9);
    opened.push(...socks);
    for (const m of socks) {
      m.client.send({ op: 'join', room, ref: 1 });
      expect(await m.client.reply(1)).toMatchObject({ op: 'joined' });
    }
    await sleep(200); // the supervisor has told both workers about the user's sockets
    const replies = await Promise.all(
      Array.from({ length: 27 }, (_v, i) => sendChat(socks[i % socks.length]!.client, room, `burst ${i}`, 100 + i)),
    );
    const acked = replies.filter((r) => r.op === 'ack').length;
    expect(replies.filter((r) => r.op !== 'ack').every((r) => r.code === 'RATE_LIMITED')).toBe(true);
    expect(acked).toBeGreaterThanOrEqual(1);
    expect(acked).toBeLessThanOrEqual(3);
    await closeAll(socks);
  });

  it(`--max-conns-per-user ${CAP}: the next upgrade gets 429 on whichever worker it lands`, async () => {
    const uid = 'cap-user';
    const socks = await spreadSockets(B().port, uid, CAP);
    opened.push(...socks);
    await sleep(200);
    for (let i = 0; i < 6; i++) {
      const r = await upgradeStatus(B().port, uid);
      expect(r.status).toBe(429);
      expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'RATE_LIMITED' } });
    }
    // The cap is per node: node A still admits the user.
    expect((await upgradeStatus(A().port, uid)).status).toBe(101);
    await closeAll(socks.slice(0, 1));
    await sleep(200);
    const again = await member(B().port, uid);
    opened.push(again);
    await closeAll([...socks, again]);
  });
});

