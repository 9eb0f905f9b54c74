// Redis outages under a 2-worker node: Redis down and back with its data (UNAVAILABLE, never
// an ack; readyz 503; members stay; then a stream with no unrecoverable gap), and Redis
// restarted empty (a new epoch; old-epoch joins get recovered:false; nothing crashes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer } from './redis-server.js';
import {
  Supervisor,
  dumpLogsOnFailure,
  allStatus,
  byWorker,
  closeAll,
  destroyAll,
  http,
  lastSeq,
  member,
  metricValue,
  pollUntil,
  sendChat,
  sleep,
  spreadMembers,
  stream,
  type Client,
  type Frame,
  type Member,
  type MsgLike,
} from './cluster-helpers.js';

const ARGS = ['--chat-rate', '100', '--chat-burst', '100', '--room-chat-budget', '1000'];

let redis: RedisServer | undefined;
let sup: Supervisor | undefined;
let pidsAtStart: Map<string, number> | undefined;
const opened: Member[] = [];
dumpLogsOnFailure(() => [sup]);

beforeAll(async () => {
  redis = await RedisServer.launch();
  sup = await Supervisor.start({ redis: redis.url, args: ARGS, name: 'node' });
  pidsAtStart = sup.workerPids();
}, 60_000);

afterAll(async () => {
  await closeAll(opened).catch(() => undefined);
  await destroyAll(sup);
  await redis?.close();
}, 20_000);

/** Both workers report the bus up (or down) in the node-wide /metrics. */
async function busAvailable(port: number, up: boolean): Promise<boolean> {
  const res = await http(port, 'GET', '/metrics', undefined, false);
  return ['w0', 'w1'].every((w) => metricValue(res.text, 'roomcast_bus_available', { worker: w }) === (up ? 1 : 0));
}

/** Sends until acked (a worker may still be reconnecting to Redis); resolves with the ack. */
async function sendUntilAcked(c: Client, room: string, body: string, refBase: number): Promise<Frame> {
  let ref = refBase;
  return pollUntil(
    `ack for ${body}`,
    async () => {
      const r = await sendChat(c, room, body, ++ref);
      if (r.op === 'ack') return r;
      expect(r, `reply to ${body}`).toMatchObject({ op: 'error', code: 'UNAVAILABLE' });
      return undefined;
    },
    8000,
    200,
  );
}

/**
 * A member's batches for `room`, which must be contiguous from `start` — or, where a gap
 * appears, recoverable as the client protocol does it: a fresh connection joining with
 * since/epoch gets recovered:true and its replay plus live batches carry on to `upTo`.
 * Returns every message the member ended up with, in order.
 */
async function messagesRecoveringGaps(m: Member, room: string, start: number, epoch: string, upTo: number): Promise<MsgLike[]> {
  const out: MsgLike[] = [];
  let last = start;
  for (const f of m.client.frames) {
    if (f.op !== 'batch' || f.room !== room) continue;
    expect(f.epoch, `${m.uid}: epoch unchanged by an outage that kept the data`).toBe(epoch);
    const from = Number(f.from);
    expect(from, `${m.uid}: overlap (batch from ${from} after ${last})`).toBeGreaterThan(last);
    if (from !== last + 1) {
      const fill = await member(m.port, `${m.uid}-gapfill`, { room, since: last, epoch });
      opened.push(fill);
      const j = fill.client.frames.find((x) => x.op === 'joined');
      expect(j, `${m.uid}: the gap ${last + 1}..${from - 1} is recoverable`).toMatchObject({ recovered: true });
      await pollUntil(`${m.uid}: the recovering connection reaches ${upTo}`, () => lastSeq(fill.client, room) >= upTo, 5000, 50);
      out.push(...stream(fill.client.frames, room, last, epoch).msgs);
      return out;
    }
    out.push(...((f.msgs as MsgLike[]) ?? []));
    last = Number(f.to);
  }
  return out;
}

describe('Redis down and back with its data', () => {
  it('sends get UNAVAILABLE (never an ack), readyz is 503, members stay; afterwards acks resume and no acked message is lost', async () => {
    const s = sup!;
    const r = redis!;
    const room = 'rd-1';
    const members = await spreadMembers(s.port, 'rd-', 8, { room, minPerWorker: 3 });
    opened.push(...members);
    const senders = [...byWorker(members).values()].map((g) => g[0]!);
    expect(new Set(senders.map((x) => x.worker)).size).toBe(2);
    const joined = members[0]!.client.frames.find((f) => f.op === 'joined')!;
    const epoch = String(joined.epoch);
    const start = Number(joined.seq);

    const acked = new Map<string, number>();
    for (const x of senders) {
      const a = await sendChat(x.client, room, `before-${x.uid}`, 1);
      expect(a).toMatchObject({ op: 'ack', shown: true });
      acked.set(`before-${x.uid}`, Number(a.seq));
    }
    expect(await pollUntil('readyz 200 on every worker', () => allStatus(s.port, '/readyz', 200), 3000)).toBe(true);

    await r.stop({ save: true });
    const downAt = Date.now();

    // Every send now fails with UNAVAILABLE on both workers; none is acked.
    let ref = 100;
    for (let round = 0; round < 3; round++) {
      for (const x of senders) {
        const reply = await sendChat(x.client, room, `down-${x.uid}-${round}`, ++ref);
        expect(reply, `send on ${x.node} while Redis is down`).toMatchObject({ op: 'error', code: 'UNAVAILABLE' });
      }
      await sleep(100);
    }
    const post = await http(s.port, 'POST', `/v1/rooms/${room}/messages`, { kind: 'system', body: 'down-api' });
    expect(post.status, post.text).toBe(503);
    expect((post.json as { error: { code: string } }).error.code).toBe('UNAVAILABLE');
    await pollUntil('readyz 503 on every worker', () => allStatus(s.port, '/readyz', 503), 5000);
    expect(await busAvailable(s.port, false), 'both workers report the bus down').toBe(true);
    expect(await allStatus(s.port, '/healthz', 200), 'liveness stays ok').toBe(true);
    // Members stay connected through the outage.
    await sleep(Math.max(0, 1000 - (Date.now() - downAt)));
    for (const m of members) expect(m.client.closeCode, `${m.uid} stays connected`).toBeUndefined();

    await r.start();
    await pollUntil('readyz 200 on every worker again', () => allStatus(s.port, '/readyz', 200), 8000, 200);
    await pollUntil('both workers report the bus up', () => busAvailable(s.port, true), 5000);
    for (const x of senders) {
      const a = await sendUntilAcked(x.client, room, `after-${x.uid}`, 1000);
      expect(a).toMatchObject({ op: 'ack', shown: true });
      acked.set(`after-${x.uid}`, Number(a.seq));
    }
    const api = await http(s.port, 'POST', `/v1/rooms/${room}/messages`, { kind: 'system', body: 'after-api' });
    expect(api.status, api.text).toBe(202);
    acked.set('after-api', Number((api.json as { seq: number }).seq));
    const maxSeq = Math.max(...acked.values());
    // The log kept its seqs: the new acks continue after the old ones.
    expect(Math.min(...[...acked].filter(([b]) => b.startsWith('after-')).map(([, q]) => q))).toBeGreaterThan(
      Math.max(...[...acked].filter(([b]) => b.startsWith('before-')).map(([, q]) => q)),
    );

    await pollUntil('every member received up to the last acked seq', () => members.every((m) => lastSeq(m.client, room) >= maxSeq), 8000, 50);
    for (const m of members) {
      const msgs = await messagesRecoveringGaps(m, room, start, epoch, maxSeq);
      const bodies = msgs.map((x) => String(x.b));
      expect(new Set(bodies).size, `${m.uid}: no duplicates`).toBe(bodies.length);
      expect(bodies.filter((b) => b.startsWith('down-')), `${m.uid}: unacked sends were not delivered`).toEqual([]);
      const lost = [...acked.keys()].filter((b) => !bodies.includes(b));
      expect(lost, `${m.uid} on ${m.node}: acked messages lost`).toEqual([]);
      expect(m.client.closeCode).toBeUndefined();
    }
  });
});

describe('Redis restarted empty', () => {
  it('the room gets a new epoch, old-epoch joins get recovered:false, and nothing crashes', async () => {
    const s = sup!;
    const r = redis!;
    if (!r.running) await r.start();
    await pollUntil('readyz 200', () => allStatus(s.port, '/readyz', 200), 8000, 200);
    await pollUntil('both workers report the bus up', () => busAvailable(s.port, true), 8000);
    const room = 're-1';
    const members = await spreadMembers(s.port, 're-', 6, { room, minPerWorker: 2 });
    opened.push(...members);
    const sender = members[0]!;
    let ack: Frame | undefined;
    for (let i = 0; i < 3; i++) ack = await sendUntilAcked(sender.client, room, `old-${i}`, i * 50);
    const oldEpoch = String(members[0]!.client.frames.find((f) => f.op === 'joined')!.epoch);
    const oldSeq = Number(ack!.seq);
    await pollUntil('members got the old-epoch messages', () => members.every((m) => lastSeq(m.client, room) >= oldSeq), 5000, 50);
    const logsBefore = s.logs.length;

    await r.restart();
    await pollUntil('readyz 200 after the empty restart', () => allStatus(s.port, '/readyz', 200), 8000, 200);
    await pollUntil('both workers report the bus up', () => busAvailable(s.port, true), 5000);

    // Right after the restart, before any new traffic: the old epoch's log is gone, so a
    // since/epoch join cannot be recovered. (Soft: the checks below still run if this fails.)
    for (let i = 0; i < 2; i++) {
      const early = await member(s.port, `re-early-${i}`, { room, since: oldSeq, epoch: oldEpoch });
      opened.push(early);
      const j = early.client.frames.find((f) => f.op === 'joined')!;
      expect.soft(j, `join with the old epoch on ${early.node} right after the restart: ${JSON.stringify(j)}`).toMatchObject({ recovered: false });
      expect.soft(j.epoch, `${early.node} reports the new epoch in joined`).not.toBe(oldEpoch);
    }

    // New traffic lands in a new epoch; every member receives it with that epoch.
    const fresh = await sendUntilAcked(sender.client, room, 'new-0', 500);
    const api = await http(s.port, 'POST', `/v1/rooms/${room}/messages`, { kind: 'system', body: 'new-api' });
    expect(api.status, api.text).toBe(202);
    const newEpoch = await pollUntil(
      'room info reports a new epoch',
      async () => {
        const info = (await http(s.port, 'GET', `/v1/rooms/${room}`)).json as { epoch?: string };
        return info.epoch && info.epoch !== oldEpoch ? info.epoch : undefined;
      },
      5000,
    );
    for (const m of members) {
      const b = await m.client.waitFor((f) => f.op === 'batch' && f.room === room && (f.msgs as MsgLike[]).some((x) => x.b === 'new-0'));
      expect(b.epoch, `${m.uid} on ${m.node}: batch of the new log`).toBe(newEpoch);
      expect(Number(b.from)).toBeLessThanOrEqual(Number(fresh.seq));
      expect(Number(b.to)).toBeGreaterThanOrEqual(Number(fresh.seq));
      await m.client.waitFor((f) => f.op === 'batch' && f.room === room && (f.msgs as MsgLike[]).some((x) => x.b === 'new-api'));
      // Within the new epoch the stream is contiguous from its first entry.
      const newFrames = m.client.frames.filter((f) => f.op === 'batch' && f.epoch === newEpoch);
      expect(Number(newFrames[0]!.from), `${m.uid}: the new log starts at seq 1`).toBe(1);
      stream(newFrames, room, 0, newEpoch);
    }

    // A reconnect with the old epoch and since: recovered:false, starting from the new head.
    const late = await member(s.port, 're-late', { room, since: oldSeq, epoch: oldEpoch });
    opened.push(late);
    expect(late.client.frames.find((f) => f.op === 'joined')).toMatchObject({ recovered: false, epoch: newEpoch });

    // Nothing crashed: same worker pids, no restarts, liveness fine, members still connected.
    expect(await allStatus(s.port, '/healthz', 200)).toBe(true);
    expect(s.exitCode).toBeUndefined();
    expect(s.workerPids()).toEqual(pidsAtStart);
    expect(s.logs.slice(logsBefore).filter((l) => l.msg === 'worker exited; restarting' || l.msg === 'worker failed to start')).toEqual([]);
    const metrics = await http(s.port, 'GET', '/metrics', undefined, false);
    expect(metricValue(metrics.text, 'roomcast_worker_restarts_total')).toBe(0);
    for (const m of members) expect(m.client.closeCode, `${m.uid} stays connected`).toBeUndefined();
  });
});
