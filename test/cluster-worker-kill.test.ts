// kill -9 of one worker under traffic: its members reconnect with since/epoch and recover
// every acked message exactly once and in order; the supervisor restarts the worker.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer } from './redis-server.js';
import {
  Supervisor,
  dumpLogsOnFailure,
  alive,
  byWorker,
  closeAll,
  destroyAll,
  http,
  key,
  lastSeq,
  reconnectMember,
  metricValue,
  pollUntil,
  sleep,
  spreadMembers,
  stream,
  type Member,
  type MsgLike,
} from './cluster-helpers.js';

const ARGS = ['--chat-rate', '100', '--chat-burst', '100', '--room-chat-budget', '1000'];

let redis: RedisServer | undefined;
let sup: Supervisor | undefined;
const opened: Member[] = [];
dumpLogsOnFailure(() => [sup]);

beforeAll(async () => {
  redis = await RedisServer.launch();
  sup = await Supervisor.start({ redis: redis.url, args: ARGS, name: 'node' });
}, 60_000);

afterAll(async () => {
  await closeAll(opened).catch(() => undefined);
  await destroyAll(sup);
  await redis?.close();
}, 20_000);

/** Chat sent by one client: ref -> body; acks are read back from its frames. */
class Sender {
  readonly sent = new Map<number, string>();
  private ref = 0;
  constructor(readonly m: Member, readonly room: string) {}
  send(): void {
    if (this.m.client.closeCode !== undefined) return;
    const ref = ++this.ref;
    const body = `${this.m.uid}#${ref}`;
    this.sent.set(ref, body);
    this.m.client.send({ op: 'send', room: this.room, kind: 'chat', body, ref });
  }
  acked(): Map<string, number> {
    const out = new Map<string, number>();
    for (const f of this.m.client.frames) {
      if (f.op !== 'ack' || typeof f.ref !== 'number') continue;
      expect(f.shown, `ack of ${this.sent.get(f.ref)}`).toBe(true);
      out.set(this.sent.get(f.ref)!, Number(f.seq));
    }
    return out;
  }
}

describe('kill -9 of a worker', () => {
  it('its members reconnect and recover every acked message exactly once, in order; the worker is restarted', async () => {
    const s = sup!;
    const room = 'kill-1';
    const members = await spreadMembers(s.port, 'k-', 12, { room, minPerWorker: 4 });
    opened.push(...members);
    const groups = byWorker(members);
    const victimWorker = 'w1';
    const survivorWorker = 'w0';
    const victims = groups.get(victimWorker)!;
    const survivors = groups.get(survivorWorker)!;
    const oldPid = s.workerPids().get(victimWorker)!;
    expect(alive(oldPid)).toBe(true);
    const readyBefore = s.readyLogs().length;
    const logsBefore = s.logs.length;

    const epoch = String(members[0]!.client.frames.find((f) => f.op === 'joined')!.epoch);
    const start = Number(members[0]!.client.frames.find((f) => f.op === 'joined')!.seq);
    // Senders on both workers (the victim's in-flight sends are simply never acked).
    const senders = [new Sender(survivors[0]!, room), new Sender(survivors[1]!, room), new Sender(victims[0]!, room), new Sender(victims[1]!, room)];
    const apiAcked = new Map<string, number>();
    let apiN = 0;
    let traffic = true;
    const apiLoop = (async () => {
      while (traffic) {
        const body = `api#${++apiN}`;
        // A post that lands on the dying worker may fail: only 202s count as acked.
        const res = await http(s.port, 'POST', `/v1/rooms/${room}/messages`, { kind: 'system', body }).catch(() => undefined);
        if (res?.status === 202) apiAcked.set(body, Number((res.json as { seq: number }).seq));
        await sleep(40);
      }
    })();
    const chatLoop = (async () => {
      while (traffic) {
        for (const x of senders) x.send();
        await sleep(30);
      }
    })();

    await sleep(400);
    // Reconnect each victim as soon as its socket closes, with since/epoch.
    const reconnected = new Map<Member, Member>();
    const reconnecting = victims.map(async (v) => {
      await v.client.closed;
      const since = lastSeq(v.client, room) || start;
      const again = await reconnectMember(s.port, v.uid, { room, since, epoch });
      opened.push(again);
      reconnected.set(v, again);
    });
    process.kill(oldPid, 'SIGKILL');
    await Promise.all(reconnecting);
    await sleep(500); // traffic keeps flowing after the reconnects
    traffic = false;
    await Promise.all([apiLoop, chatLoop]);
    await sleep(300); // replies to the last sends

    const acked = new Map<string, number>(apiAcked);
    for (const x of senders) for (const [b, seq] of x.acked()) acked.set(b, seq);
    const maxSeq = Math.max(...acked.values());
    // Acks from the victim before the kill and from the survivor during it, and API posts.
    expect([...senders.slice(2).flatMap((x) => [...x.acked().keys()])].length, 'victim-worker senders were acked before the kill').toBeGreaterThan(0);
    expect(apiAcked.size).toBeGreaterThan(3);

    for (const v of victims) {
      const again = reconnected.get(v)!;
      const joined = again.client.frames.find((f) => f.op === 'joined' && f.room === room)!;
      expect(joined, `${v.uid} rejoined on ${again.node}`).toMatchObject({ recovered: true, epoch });
    }
    // What each member ended up with: survivors on one connection; victims on the old one
    // (contiguous up to the kill) then the new one (contiguous from since: replay, then live).
    const views: Array<{ who: string; last: () => number; msgs: () => MsgLike[] }> = [
      ...survivors.map((m) => ({
        who: `${m.uid} (survivor on ${m.node})`,
        last: () => lastSeq(m.client, room),
        msgs: () => stream(m.client.frames, room, start, epoch).msgs,
      })),
      ...victims.map((v) => {
        const again = reconnected.get(v)!;
        const who = `${v.uid} (victim, back on ${again.node})`;
        return {
          who,
          last: () => lastSeq(again.client, room),
          msgs: () => {
            const before = stream(v.client.frames, room, start, epoch);
            const since = Number(new URL(again.client.ws.url).searchParams.get('since'));
            expect(since, `${who}: since = last seq processed`).toBe(before.last || start);
            try {
              return [...before.msgs, ...stream(again.client.frames, room, since, epoch).msgs];
            } catch (err) {
              throw new Error(`${who} after reconnecting: ${(err as Error).message}`);
            }
          },
        };
      }),
    ];
    await pollUntil('every member caught up to the last acked seq', () => views.every((x) => x.last() >= maxSeq), 10_000, 50);

    for (const x of views) {
      const msgs = x.msgs();
      const keys = msgs.map(key);
      expect(new Set(keys).size, `${x.who}: no message twice`).toBe(keys.length);
      let prevSeq = 0;
      let prevBody = '';
      for (const m of msgs) {
        const body = String(m.b);
        const seq = acked.get(body);
        if (seq === undefined) continue;
        expect(seq, `${x.who}: ${body} (seq ${seq}) after ${prevBody} (seq ${prevSeq})`).toBeGreaterThanOrEqual(prevSeq);
        prevSeq = seq;
        prevBody = body;
      }
      const got = new Set(msgs.map((m) => String(m.b)));
      const lost = [...acked.keys()].filter((b) => !got.has(b));
      expect(lost, `${x.who}: acked messages lost`).toEqual([]);
    }

    // The supervisor restarted the worker: a new `worker ready` for w1 with a new pid.
    const restarted = await s.waitLog((l) => l.msg === 'worker ready' && l.worker === victimWorker, 15_000, s.readyLogs()[readyBefore - 1]!.index + 1);
    expect(restarted.pid).not.toBe(oldPid);
    expect(alive(oldPid)).toBe(false);
    expect(s.logs.slice(logsBefore).some((l) => l.msg === 'worker exited; restarting' && l.worker === victimWorker)).toBe(true);
    const metrics = await pollUntil(
      'restart counter in /metrics',
      async () => {
        const res = await http(s.port, 'GET', '/metrics', undefined, false);
        return (metricValue(res.text, 'roomcast_worker_restarts_total') ?? 0) >= 1 ? res.text : undefined;
      },
      5000,
    );
    expect(metricValue(metrics, 'roomcast_worker_restarts_total')).toBeGreaterThanOrEqual(1);
    // The restarted worker serves: a member landing on it receives live batches.
    const onNew = (await spreadMembers(s.port, 'k-new-', 2, { room, minPerWorker: 1 })).find((m) => m.worker === victimWorker)!;
    opened.push(onNew);
    const res = await http(s.port, 'POST', `/v1/rooms/${room}/messages`, { kind: 'system', body: 'after restart' });
    expect(res.status).toBe(202);
    await onNew.client.waitFor((f) => f.op === 'batch' && (f.msgs as MsgLike[]).some((m) => m.b === 'after restart'));
  });
});
