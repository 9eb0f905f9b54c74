// Two roomcast nodes (separate supervisors, 2 workers each, different ports) on one Redis.
// In order (they share the two nodes):
//   1. cross-worker and cross-node delivery in one order with contiguous seqs, acks in the
//      batch holding their seq;
//   2. kick/mute issued on node A acting on members of node B, and a room mute;
//   3. the node-wide /metrics aggregate (both workers and the supervisor);
//   4. cluster-wide member counts converging within 5 s after joins, leaves, and a kill -9 of
//      one of node B's workers (TTL'd per-worker heartbeats);
//   5. SIGTERM drains node A: bye {reason, reconnectMs}, close 1001, exit 0; node B untouched.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer } from './redis-server.js';
import {
  Supervisor,
  alive,
  byWorker,
  closeAll,
  connectClient,
  destroyAll,
  dumpLogsOnFailure,
  http,
  key,
  lastSeq,
  member,
  metricValue,
  pollUntil,
  rangeOf,
  sendChat,
  sleep,
  spreadMembers,
  stream,
  token,
  type Member,
} from './cluster-helpers.js';

const ARGS = ['--chat-rate', '100', '--chat-burst', '100', '--room-chat-budget', '1000'];
const CONVERGE_MS = 5000;
const DRAIN_MS = 2000;

let redis: RedisServer | undefined;
let nodeA: Supervisor | undefined;
let nodeB: Supervisor | undefined;
const opened: Member[] = [];
dumpLogsOnFailure(() => [nodeA, nodeB]);

beforeAll(async () => {
  redis = await RedisServer.launch();
  [nodeA, nodeB] = await Promise.all([
    Supervisor.start({ redis: redis.url, args: [...ARGS, '--drain-ms', String(DRAIN_MS)], name: 'node A' }),
    Supervisor.start({ redis: redis.url, args: ARGS, name: 'node B' }),
  ]);
}, 60_000);

afterAll(async () => {
  await closeAll(opened).catch(() => undefined);
  await destroyAll(nodeA, nodeB);
  await redis?.close();
}, 20_000);

const A = () => nodeA!;
const B = () => nodeB!;

describe('cluster delivery across workers and nodes', () => {
  it('every member gets every message once, in one order, with contiguous seqs; every ack is in the batch holding its seq', async () => {
    const room = 'order-1';
    const onA = await spreadMembers(A().port, 'a-', 12, { room, minPerWorker: 3 });
    const onB = await spreadMembers(B().port, 'b-', 12, { room, minPerWorker: 3 });
    opened.push(...onA, ...onB);
    const all = [...onA, ...onB];
    // Both workers of both nodes hold members.
    for (const [node, ms] of [['A', onA], ['B', onB]] as const) {
      expect([...byWorker(ms).keys()].sort(), `workers of node ${node}`).toEqual(['w0', 'w1']);
    }
    const joined = all.map((m) => m.client.frames.find((f) => f.op === 'joined' && f.room === room)!);
    const epoch = String(joined[0]!.epoch);
    expect(new Set(joined.map((j) => j.epoch)).size, 'one epoch everywhere').toBe(1);
    expect(new Set(joined.map((j) => j.seq)).size, 'same head everywhere (nothing sent yet)').toBe(1);
    const start = Number(joined[0]!.seq);

    // Two senders on each of the four workers.
    const senders: Member[] = [];
    for (const ms of [onA, onB]) for (const group of byWorker(ms).values()) senders.push(...group.slice(0, 2));
    expect(senders).toHaveLength(8);

    const acked = new Map<string, number>(); // body -> seq
    const ROUNDS = 5;
    let ref = 0;
    const pending: Array<Promise<void>> = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (const s of senders) {
        const body = `${s.uid}@${s.node}#${r}`;
        const myRef = ++ref;
        pending.push(
          sendChat(s.client, room, body, myRef).then((reply) => {
            expect(reply, `reply to ${body}`).toMatchObject({ op: 'ack', shown: true });
            acked.set(body, Number(reply.seq));
          }),
        );
      }
      // API posts on both nodes, interleaved with the chat.
      for (const [name, node] of [['A', A()], ['B', B()]] as const) {
        const body = `api-${name}-${r}`;
        pending.push(
          http(node.port, 'POST', `/v1/rooms/${room}/messages`, { kind: 'system', body }).then((res) => {
            expect(res.status, `API post ${body}: ${res.text}`).toBe(202);
            acked.set(body, Number((res.json as { seq: number }).seq));
          }),
        );
      }
      await sleep(30);
    }
    await Promise.all(pending);
    const total = ROUNDS * (senders.length + 2);
    expect(acked.size).toBe(total);
    const maxSeq = Math.max(...acked.values());

    // Everyone catches up to the last acked seq.
    await pollUntil('every member received up to the last acked seq', () => all.every((m) => lastSeq(m.client, room) >= maxSeq), 10_000, 50);
    await sleep(200); // anything after it (there should be nothing) would show up too

    const reference = stream(onA[0]!.client.frames, room, start, epoch);
    expect(reference.msgs).toHaveLength(total);
    expect(new Set(reference.msgs.map(key)).size, 'no duplicates').toBe(total);
    for (const m of all) {
      let s;
      try {
        s = stream(m.client.frames, room, start, epoch);
      } catch (err) {
        throw new Error(`${m.uid} on ${m.node}: ${(err as Error).message}`);
      }
      expect(s.last, `${m.uid} on ${m.node}: last seq`).toBe(reference.last);
      expect(s.msgs.map((x) => [key(x), x.t]), `${m.uid} on ${m.node}: messages and their order`).toEqual(
        reference.msgs.map((x) => [key(x), x.t]),
      );
      for (const [body, seq] of acked) {
        const r = rangeOf(s, body);
        expect(r, `${m.uid} on ${m.node}: acked ${body} (seq ${seq}) missing`).toBeDefined();
        expect(seq, `${m.uid} on ${m.node}: ${body} acked with seq ${seq} but delivered in batch ${r!.from}..${r!.to}`).toBeGreaterThanOrEqual(r!.from);
        expect(seq).toBeLessThanOrEqual(r!.to);
      }
    }
    // Members of one worker get the very same batch frames (one publish per worker per tick).
    for (const ms of [onA, onB]) {
      for (const group of byWorker(ms).values()) {
        const ranges = group.map((m) => stream(m.client.frames, room, start).ranges.map((r) => `${r.from}-${r.to}`).join(','));
        expect(new Set(ranges).size, `batches of the members of ${group[0]!.node}`).toBe(1);
      }
    }
    // Acks of one log entry share its seq; entries are in seq order in everyone's stream.
    const order = reference.msgs.map(key);
    const bySeq = [...acked].sort((x, y) => x[1] - y[1]);
    for (let i = 1; i < bySeq.length; i++) {
      const [prevBody, prevSeq] = bySeq[i - 1]!;
      const [body, seq] = bySeq[i]!;
      if (seq === prevSeq) continue;
      const pi = order.findIndex((k) => k.endsWith(`|${prevBody}`));
      const ci = order.findIndex((k) => k.endsWith(`|${body}`));
      expect(pi, `${prevBody} (seq ${prevSeq}) before ${body} (seq ${seq})`).toBeLessThan(ci);
    }
    await closeAll(all);
  });

  it('kick and mute issued on node A act on members connected to node B; a room mute reaches every node', async () => {
    const room = 'mod-1';
    const kv = await member(B().port, 'kick-victim', { room });
    const mv = await member(B().port, 'mute-victim', { room });
    const bystanderB = await member(B().port, 'bystander-b', { room });
    const bystanderA = await member(A().port, 'bystander-a', { room });
    const more = [...(await spreadMembers(B().port, 'mod-b-', 4, { room })), ...(await spreadMembers(A().port, 'mod-a-', 4, { room }))];
    const everyone = [kv, mv, bystanderB, bystanderA, ...more];
    opened.push(...everyone);

    // Kick on A -> kicked on B; rejoining is refused on any worker of any node.
    const kick = await http(A().port, 'POST', `/v1/rooms/${room}/kick`, { uid: 'kick-victim', reason: 'spam', seconds: 60 });
    expect(kick.status, kick.text).toBe(200);
    expect(await kv.client.op('kicked', (f) => f.room === room)).toMatchObject({ room, reason: 'spam' });
    kv.client.send({ op: 'join', room, ref: 901 });
    expect(await kv.client.reply(901)).toMatchObject({ op: 'error', code: 'KICKED', ref: 901 });
    kv.client.send({ op: 'send', room, kind: 'chat', body: 'still here?', ref: 902 });
    expect(await kv.client.reply(902)).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    for (const port of [A().port, B().port]) {
      const seen = new Set<string>();
      for (let i = 0; i < 16 && seen.size < 2; i++) {
        const c = await connectClient(port, { token: await token({ uid: 'kick-victim' }), room });
        const reply = c.frames.find((f) => f.op === 'joined' || f.op === 'error');
        const node = String(c.frames.find((f) => f.op === 'welcome')!.node);
        seen.add(node);
        expect(reply, `fresh connection of the kicked user on ${node}`).toMatchObject({ op: 'error', code: 'KICKED' });
        await c.close();
      }
    }
    expect(bystanderB.client.frames.some((f) => f.op === 'kicked'), 'only the kicked user is kicked').toBe(false);

    // Mute on A -> muted on B; the muted user's send is refused, the others' are not.
    const mute = await http(A().port, 'POST', `/v1/rooms/${room}/mute`, { uid: 'mute-victim', seconds: 60 });
    expect(mute.status, mute.text).toBe(200);
    const muted = await mv.client.op('muted', (f) => f.room === room);
    expect(muted.all).toBeUndefined();
    expect(Number(muted.until)).toBeGreaterThan(Date.now() + 30_000);
    expect(await sendChat(mv.client, room, 'muted?', 903)).toMatchObject({ op: 'error', code: 'MUTED' });
    expect(await sendChat(bystanderB.client, room, 'not muted', 904)).toMatchObject({ op: 'ack', shown: true });

    // Room mute on A -> every member on every worker of both nodes is told; viewers cannot chat.
    const roomMute = await http(A().port, 'POST', `/v1/rooms/${room}/mute`, { seconds: 60 });
    expect(roomMute.status, roomMute.text).toBe(200);
    for (const m of everyone.filter((x) => x !== kv)) {
      expect(await m.client.op('muted', (f) => f.room === room && f.all === true), `${m.uid} on ${m.node}`).toMatchObject({ all: true });
    }
    expect(new Set(more.map((m) => `${m.port}/${m.worker}`)).size, 'room mute checked on all four workers').toBe(4);
    expect(await sendChat(bystanderB.client, room, 'room muted?', 905)).toMatchObject({ op: 'error', code: 'MUTED' });
    expect(await sendChat(bystanderA.client, room, 'room muted?', 906)).toMatchObject({ op: 'error', code: 'MUTED' });
    // The API still speaks during a room mute.
    const notice = await http(B().port, 'POST', `/v1/rooms/${room}/messages`, { kind: 'system', body: 'api speaks' });
    expect(notice.status, notice.text).toBe(202);

    // Unmuting the room on B lifts it on A too.
    const unmute = await http(B().port, 'POST', `/v1/rooms/${room}/mute`, { seconds: 0 });
    expect(unmute.status, unmute.text).toBe(200);
    await bystanderA.client.op('muted', (f) => f.room === room && f.all === true && f.until === 0);
    expect(await sendChat(bystanderA.client, room, 'free again', 907)).toMatchObject({ op: 'ack', shown: true });
    expect(await sendChat(mv.client, room, 'still muted?', 908)).toMatchObject({ op: 'error', code: 'MUTED' });
    await closeAll(everyone);
  });

  it('GET /metrics on a node port aggregates both workers and the supervisor', async () => {
    // Connections on both workers so the per-worker gauges are non-trivial.
    const ms = await spreadMembers(A().port, 'metrics-', 4);
    opened.push(...ms);
    // Several fresh connections: whichever worker answers, the text is the node-wide aggregate.
    for (let i = 0; i < 4; i++) {
      const res = await http(A().port, 'GET', '/metrics', undefined, false);
      expect(res.status).toBe(200);
      for (const w of ['w0', 'w1']) {
        expect(res.text, `series of ${w}`).toContain(`worker="${w}"`);
        expect(metricValue(res.text, 'roomcast_connections', { worker: w }), `roomcast_connections of ${w}`).toBeGreaterThanOrEqual(1);
      }
      expect(metricValue(res.text, 'roomcast_worker_restarts_total'), 'supervisor restart counter').toBe(0);
      // Node B's workers are a different node: not part of A's aggregate.
      expect(res.text.match(/^roomcast_connections\{[^}]*\}/gm)?.length).toBe(2);
    }
    await closeAll(ms);
  });
});

/** Polls GET /v1/rooms/:room on both nodes (fresh connections, so both workers of each answer) until every read is `want`. */
async function converge(room: string, want: number, since: number): Promise<void> {
  const reads: Array<[string, number]> = [];
  await pollUntil(
    `members of ${room} = ${want} on both nodes`,
    async () => {
      const round = await Promise.all(
        (['A', 'A', 'A', 'A', 'B', 'B', 'B', 'B'] as const).map(async (name): Promise<[string, number]> => {
          const res = await http((name === 'A' ? nodeA! : nodeB!).port, 'GET', `/v1/rooms/${room}`);
          return [name, res.status === 200 ? (res.json as { members: number }).members : -res.status];
        }),
      );
      reads.splice(0, reads.length, ...round);
      return reads.every(([, n]) => n === want);
    },
    CONVERGE_MS - (Date.now() - since),
    100,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last reads ${JSON.stringify(reads)}`);
  });
}

describe('member counts across workers and nodes', () => {
  it('converge within 5 s after joins, after leaves, and after a worker dies with its members', async () => {
    const room = 'count-1';
    const onA = await spreadMembers(nodeA!.port, 'ca-', 8, { room, minPerWorker: 3 });
    const onB = await spreadMembers(nodeB!.port, 'cb-', 8, { room, minPerWorker: 3 });
    opened.push(...onA, ...onB);
    const n = onA.length + onB.length;
    await converge(room, n, Date.now());

    // Some leave: two from each worker of A, one from each worker of B (leave op and close).
    const leaving: Member[] = [];
    for (const g of byWorker(onA).values()) leaving.push(...g.slice(0, 2));
    for (const g of byWorker(onB).values()) leaving.push(g[0]!);
    const [byOp, byClose] = [leaving.slice(0, 3), leaving.slice(3)];
    for (const m of byOp) {
      m.client.send({ op: 'leave', room, ref: 77 });
      expect(await m.client.reply(77)).toMatchObject({ op: 'left', room });
    }
    await closeAll(byClose);
    const left = Date.now();
    await converge(room, n - leaving.length, left);

    // kill -9 one worker of B with its remaining members; they do not reconnect.
    const stay = onB.filter((m) => !leaving.includes(m));
    const victims = stay.filter((m) => m.worker === 'w1');
    expect(victims.length).toBeGreaterThan(0);
    const pid = nodeB!.workerPids().get('w1')!;
    process.kill(pid, 'SIGKILL');
    const killedAt = Date.now();
    await Promise.all(victims.map((v) => v.client.closed));
    await converge(room, n - leaving.length - victims.length, killedAt);
  });
});

describe('drain on SIGTERM', () => {
  it('SIGTERM: members get bye then a close; the supervisor exits 0 within a few seconds; the other node is untouched', async () => {
    const s = nodeA!;
    const room = 'drain-1';
    const members = await spreadMembers(s.port, 'd-', 8, { room, minPerWorker: 3 });
    const elsewhere = await spreadMembers(nodeB!.port, 'o-', 2, { room, minPerWorker: 0 });
    opened.push(...members, ...elsewhere);
    expect([...byWorker(members).keys()].sort()).toEqual(['w0', 'w1']);
    const workerPids = [...s.workerPids().values()];

    const t0 = Date.now();
    s.kill('SIGTERM');
    await pollUntil('every member of node A closed', () => members.every((m) => m.client.closeCode !== undefined), 8000, 50);
    const codes = members.map((m) => m.client.closeCode);
    for (const [i, m] of members.entries()) {
      const byeAt = m.client.frames.findIndex((f) => f.op === 'bye');
      expect(byeAt, `${m.uid} on ${m.node} got bye before the close`).toBeGreaterThanOrEqual(0);
      const bye = m.client.frames[byeAt]!;
      expect(typeof bye.reason, `${m.uid}: bye.reason`).toBe('string');
      expect(String(bye.reason).length).toBeGreaterThan(0);
      expect(Number.isInteger(bye.reconnectMs), `${m.uid}: bye.reconnectMs ${String(bye.reconnectMs)}`).toBe(true);
      expect(Number(bye.reconnectMs)).toBeGreaterThanOrEqual(0);
      expect(Number(bye.reconnectMs)).toBeLessThanOrEqual(DRAIN_MS);
      expect(codes[i], `${m.uid}: close code`).toBe(1001);
    }

    await pollUntil('supervisor exit', () => s.exitCode !== undefined, 8000 - (Date.now() - t0), 50);
    expect(s.exitCode, `supervisor exit (signal ${String(s.exitSignal)})`).toBe(0);
    expect(Date.now() - t0).toBeLessThan(8000);
    await pollUntil('workers gone', () => workerPids.every((p) => !alive(p)), 3000);
    expect(s.logs.some((l) => l.msg === 'roomcast supervisor stopped')).toBe(true);
    expect(s.logs.filter((l) => l.msg === 'worker exited; restarting'), 'a drain is not a crash').toEqual([]);

    // The other node keeps serving its members.
    for (const m of elsewhere) {
      expect(m.client.closeCode).toBeUndefined();
      expect(m.client.frames.some((f) => f.op === 'bye')).toBe(false);
    }
  });
});
