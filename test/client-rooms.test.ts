// Unit tests of the SDK's room state: joins, resume with since/epoch, gap recovery, dedupe,
// recovered:false, kicked/muted. Fake transport and clock; the test plays the server.
import { describe, expect, it } from 'vitest';
import { connect, type Batch, type ConnectOptions } from '../src/client/index.js';
import { FakeClock, FakeTransport, flush, recordEvents, type FakeSocket } from '../src/client/testing.js';

function setup(opts: Partial<ConnectOptions> = {}) {
  const clock = new FakeClock();
  const t = new FakeTransport();
  const rc = connect({ url: 'ws://h1/ws', transport: t.factory, clock, random: () => 0.5, joinInUrl: false, ...opts });
  return { clock, t, rc, ...recordEvents(rc) };
}

async function open(t: FakeTransport): Promise<FakeSocket> {
  await flush();
  t.last.accept();
  await flush();
  return t.last;
}

const E = 'ep1';
const batch = (from: number, to = from, extra: Record<string, unknown> = {}) => ({
  op: 'batch',
  room: 'r1',
  epoch: E,
  from,
  to,
  msgs: Array.from({ length: to - from + 1 }, (_, i) => ({ u: 'x', k: 'chat', b: `m${from + i}`, t: 1 })),
  ...extra,
});
/** The seq ranges delivered to the app. */
const ranges = (of: ReturnType<typeof setup>['of']) => of<Batch>('batch').map((b) => `${b.from}-${b.to}`);

/** Joins r1 on `s`, answering with epoch E and `seq`. */
async function joinR1(rc: ReturnType<typeof setup>['rc'], s: FakeSocket, seq = 10) {
  const p = rc.join('r1');
  await flush();
  const j = s.last('join');
  expect(j).toMatchObject({ room: 'r1' });
  expect(j.since).toBeUndefined();
  s.push({ op: 'joined', ref: j.ref, room: 'r1', epoch: E, seq, members: 3 });
  return p;
}

describe('joining', () => {
  it('joins, resolves with the joined answer, and delivers batches in order', async () => {
    const { t, rc, of } = setup();
    const s = await open(t);
    await expect(joinR1(rc, s)).resolves.toEqual({ room: 'r1', epoch: E, seq: 10, members: 3 });
    expect(of('joined')).toEqual([{ room: 'r1', epoch: E, seq: 10, members: 3, resumed: false }]);
    s.push(batch(11, 12, { likes: 4 }));
    s.push(batch(13));
    expect(ranges(of)).toEqual(['11-12', '13-13']);
    expect(of<Batch>('batch')[0]).toMatchObject({ room: 'r1', epoch: E, likes: 4, replay: false, msgs: [{ b: 'm11' }, { b: 'm12' }] });
    expect(rc.rooms()).toEqual([{ room: 'r1', epoch: E, seq: 13, members: 3, joined: true, mutedUntil: 0, roomMutedUntil: 0 }]);
    // joining again while joined answers at once
    await expect(rc.join('r1')).resolves.toMatchObject({ seq: 13 });
    expect(s.ops('join')).toHaveLength(1);
    await rc.close();
  });

  it('queues a join made before the connection opens and puts the first room in the URL', async () => {
    const { t, rc } = setup({ joinInUrl: true });
    const p = rc.join('r1');
    const p2 = rc.join('r2');
    await flush();
    expect(t.last.query.get('room')).toBe('r1');
    expect(t.last.query.get('since')).toBeNull();
    const s = await open(t);
    // r1 rides on the URL; only r2 needs a join op
    expect(s.ops('join').map((j) => j.room)).toEqual(['r2']);
    s.push({ op: 'joined', room: 'r1', epoch: E, seq: 0, members: 1 });
    s.push({ op: 'joined', ref: s.last('join').ref, room: 'r2', epoch: E, seq: 5, members: 1 });
    await expect(p).resolves.toMatchObject({ room: 'r1', seq: 0 });
    await expect(p2).resolves.toMatchObject({ room: 'r2', seq: 5 });
    await rc.close();
  });

  it('resumes a join that the caller persisted (join with since/epoch)', async () => {
    const { t, rc, of } = setup();
    const s = await open(t);
    const p = rc.join('r1', { since: 7, epoch: E });
    await flush();
    expect(s.last('join')).toMatchObject({ room: 'r1', since: 7, epoch: E });
    s.push({ op: 'joined', ref: s.last('join').ref, room: 'r1', epoch: E, seq: 9, members: 1, recovered: true });
    s.push(batch(8, 9));
    await expect(p).resolves.toMatchObject({ recovered: true, seq: 9 });
    expect(of<Batch>('batch').map((b) => [b.from, b.to, b.replay])).toEqual([[8, 9, true]]);
    await rc.close();
  });

  it('join with last: the recent batches come as replay before live ones; rejoins use since, not last', async () => {
    const { t, clock, rc, of } = setup({ joinInUrl: true });
    const p = rc.join('r1', { last: 3 });
    await flush();
    expect(Object.fromEntries(t.last.query)).toMatchObject({ room: 'r1', last: '3' });
    const s = await open(t);
    s.push({ op: 'joined', room: 'r1', epoch: E, seq: 10, members: 1 });
    await expect(p).resolves.toMatchObject({ seq: 10 });
    s.push(batch(8, 9)); // the tail, in as many frames as the server likes
    s.push(batch(10));
    s.push(batch(11)); // live
    expect(of<Batch>('batch').map((b) => [b.from, b.to, b.replay])).toEqual([[8, 9, true], [10, 10, true], [11, 11, false]]);
    expect(of('gap')).toEqual([]);
    s.serverClose(1006);
    await clock.advance(1000);
    expect(t.last.query.get('last')).toBeNull();
    expect(t.last.query.get('since')).toBe('11');
    const p2 = rc.join('r2', { last: 2 });
    await open(t);
    await flush();
    expect(t.last.last('join')).toMatchObject({ room: 'r2', last: 2 });
    await expect(rc.join('r3', { last: 101 })).rejects.toMatchObject({ code: 'BAD_FRAME' });
    void p2.catch(() => undefined);
    await rc.close();
  });

  it('leaves: the room is forgotten and not rejoined', async () => {
    const { t, clock, rc, of } = setup();
    const s = await open(t);
    await joinR1(rc, s);
    const p = rc.leave('r1');
    s.push({ op: 'left', ref: s.last('leave').ref, room: 'r1' });
    await p;
    s.push(batch(11));
    expect(ranges(of)).toEqual([]);
    s.serverClose(1006);
    await clock.advance(1000);
    const s2 = await open(t);
    expect(s2.ops('join')).toEqual([]);
    expect(rc.rooms()).toEqual([]);
    await rc.close();
  });
});

describe('resuming after a reconnect', () => {
  it('rejoins every room with since = last seq and its epoch, first one in the URL', async () => {
    const { t, clock, rc, of } = setup({ joinInUrl: true });
    const s = await open(t);
    await joinR1(rc, s);
    const p2 = rc.join('r2');
    await flush();
    s.push({ op: 'joined', ref: s.last('join').ref, room: 'r2', epoch: 'ep2', seq: 100, members: 1 });
    await p2;
    s.push(batch(11, 12));
    s.serverClose(1006);
    await clock.advance(1000);
    const s2 = t.last;
    expect(Object.fromEntries(s2.query)).toMatchObject({ room: 'r1', since: '12', epoch: E });
    await open(t);
    expect(s2.ops('join')).toEqual([{ op: 'join', ref: expect.any(Number), room: 'r2', since: 100, epoch: 'ep2' }]);
    s2.push({ op: 'joined', room: 'r1', epoch: E, seq: 14, members: 2, recovered: true });
    s2.push({ op: 'joined', ref: s2.last('join').ref, room: 'r2', epoch: 'ep2', seq: 100, members: 1, recovered: true });
    s2.push(batch(13, 14)); // the replay
    s2.push(batch(15)); // live
    expect(ranges(of)).toEqual(['11-12', '13-14', '15-15']);
    expect(of<Batch>('batch').map((b) => b.replay)).toEqual([false, true, false]);
    expect(of('joined').slice(-2)).toEqual([
      { room: 'r1', epoch: E, seq: 14, members: 2, recovered: true, resumed: true },
      { room: 'r2', epoch: 'ep2', seq: 100, members: 1, recovered: true, resumed: true },
    ]);
    expect(of('reset')).toEqual([]);
    await rc.close();
  });

  it('surfaces recovered:false as a reset and continues from the new position', async () => {
    const { t, clock, rc, of } = setup();
    const s = await open(t);
    await joinR1(rc, s);
    s.push(batch(11));
    s.serverClose(1006);
    await clock.advance(1000);
    const s2 = await open(t);
    expect(s2.last('join')).toMatchObject({ room: 'r1', since: 11, epoch: E });
    s2.push({ op: 'joined', ref: s2.last('join').ref, room: 'r1', epoch: 'ep2', seq: 3, members: 1, recovered: false });
    s2.push(batch(4, 4, { epoch: 'ep2' }));
    expect(of('reset')).toEqual([{ room: 'r1', epoch: 'ep2', seq: 3, previousEpoch: E, previousSeq: 11, reason: 'not-recovered' }]);
    expect(of('joined').at(-1)).toMatchObject({ recovered: false, resumed: true });
    expect(ranges(of)).toEqual(['11-11', '4-4']);
    await rc.close();
  });

  it('resends a request made while the rejoin is in flight only after it is joined', async () => {
    const { t, clock, rc } = setup();
    const s = await open(t);
    await joinR1(rc, s);
    s.serverClose(1006);
    await clock.advance(1000);
    const s2 = await open(t);
    const sent = rc.send('r1', 'hi');
    await flush();
    expect(s2.ops('send')).toEqual([]);
    s2.push({ op: 'joined', ref: s2.last('join').ref, room: 'r1', epoch: E, seq: 10, members: 1, recovered: true });
    expect(s2.last('send')).toMatchObject({ room: 'r1', kind: 'chat', body: 'hi' });
    s2.push({ op: 'ack', ref: s2.last('send').ref, shown: true, seq: 11 });
    await expect(sent).resolves.toEqual({ shown: true, seq: 11 });
    await rc.close();
  });

  it('retries a rejoin refused with RATE_LIMITED after retryMs', async () => {
    const { t, clock, rc, of } = setup();
    const s = await open(t);
    await joinR1(rc, s);
    s.serverClose(1006);
    await clock.advance(1000);
    const s2 = await open(t);
    s2.push({ op: 'error', ref: s2.last('join').ref, code: 'RATE_LIMITED', message: 'too many joins', retryMs: 400 });
    await clock.advance(399);
    expect(s2.ops('join')).toHaveLength(1);
    await clock.advance(300);
    expect(s2.ops('join')).toHaveLength(2);
    expect(s2.last('join')).toMatchObject({ since: 10, epoch: E });
    expect(of('error')).toEqual([]);
    await rc.close();
  });
});

describe('gaps and duplicates', () => {
  it('detects a gap, rejoins with since once, holds live batches and releases them in order', async () => {
    const { t, rc, of } = setup();
    const s = await open(t);
    await joinR1(rc, s);
    s.push(batch(11));
    s.push(batch(14)); // 12-13 missing
    s.push(batch(15));
    s.push(batch(16, 17));
    expect(ranges(of)).toEqual(['11-11']);
    expect(of('gap')).toEqual([{ room: 'r1', expected: 12, got: 14 }]);
    expect(s.ops('join')).toHaveLength(2); // the first join and one recovery
    expect(s.last('join')).toMatchObject({ room: 'r1', since: 11, epoch: E });
    s.push({ op: 'joined', ref: s.last('join').ref, room: 'r1', epoch: E, seq: 17, members: 3, recovered: true });
    s.push(batch(12, 17)); // replay
    s.push(batch(18)); // live again
    expect(ranges(of)).toEqual(['11-11', '12-17', '18-18']);
    expect(of('joined').at(-1)).toMatchObject({ resumed: true, recovered: true });
    await rc.close();
  });

  it('drops batches it has already delivered (replays, duplicates)', async () => {
    const { t, rc, of } = setup();
    const s = await open(t);
    await joinR1(rc, s);
    s.push(batch(11, 13));
    s.push(batch(11, 13));
    s.push(batch(12));
    s.push(batch(14));
    s.push(batch(14));
    expect(ranges(of)).toEqual(['11-13', '14-14']);
    expect(s.ops('join')).toHaveLength(1);
    await rc.close();
  });

  it('refetches when a batch overlaps what was delivered (it cannot be split by seq)', async () => {
    const { t, rc, of } = setup();
    const s = await open(t);
    await joinR1(rc, s);
    s.push(batch(11, 12));
    s.push(batch(12, 14));
    expect(ranges(of)).toEqual(['11-12']);
    expect(s.last('join')).toMatchObject({ since: 12 });
    s.push({ op: 'joined', ref: s.last('join').ref, room: 'r1', epoch: E, seq: 14, members: 1, recovered: true });
    s.push(batch(13, 14));
    expect(ranges(of)).toEqual(['11-12', '13-14']);
    await rc.close();
  });

  it('a recovery answered recovered:false skips to the new seq and keeps later live batches', async () => {
    const { t, rc, of } = setup();
    const s = await open(t);
    await joinR1(rc, s);
    s.push(batch(15));
    s.push({ op: 'joined', ref: s.last('join').ref, room: 'r1', epoch: E, seq: 15, members: 1, recovered: false });
    s.push(batch(16));
    expect(of('reset')).toEqual([{ room: 'r1', epoch: E, seq: 15, previousEpoch: E, previousSeq: 10, reason: 'not-recovered' }]);
    expect(ranges(of)).toEqual(['16-16']);
    await rc.close();
  });

  it('treats a batch from another epoch as a reset', async () => {
    const { t, rc, of } = setup();
    const s = await open(t);
    await joinR1(rc, s);
    s.push(batch(1, 2, { epoch: 'ep9' }));
    expect(of('reset')).toEqual([{ room: 'r1', epoch: 'ep9', seq: 0, previousEpoch: E, previousSeq: 10, reason: 'epoch-changed' }]);
    expect(of<Batch>('batch').map((b) => [b.epoch, b.from, b.to])).toEqual([['ep9', 1, 2]]);
    await rc.close();
  });

  it('a gap-filling replay may interleave with live batches and run past joined.seq: no extra joins', async () => {
    const { t, rc, of } = setup();
    const s = await open(t);
    await joinR1(rc, s);
    s.push(batch(11));
    s.push(batch(14, 15)); // live; gap: 12-13
    expect(s.ops('join')).toHaveLength(2);
    s.push({ op: 'joined', ref: s.last('join').ref, room: 'r1', epoch: E, seq: 15, members: 1, recovered: true });
    // the member stays subscribed: live frames keep coming while the replay is paced out,
    // and replay chunks need not end where live batches do
    s.push(batch(16, 18)); // live
    s.push(batch(12, 14)); // replay: ends inside the queued live 14-15
    s.push(batch(19)); // live
    s.push(batch(15, 17)); // replay: ends inside the queued live 16-18
    s.push(batch(18, 19)); // replay, past joined.seq, catching up with the live stream
    s.push(batch(20)); // live, after the catch-up
    expect(ranges(of)).toEqual(['11-11', '12-14', '15-17', '18-19', '20-20']);
    expect(s.ops('join')).toHaveLength(2);
    expect(of<Batch>('batch').map((b) => b.replay)).toEqual([false, true, false, false, false]);
    expect(rc.rooms()[0]!.seq).toBe(20);
    await rc.close();
  });

  it('a replay that stops delivering while a gap remains is retried after recoveryStallMs', async () => {
    const { t, clock, rc, of } = setup({ recoveryStallMs: 3000 });
    const s = await open(t);
    await joinR1(rc, s);
    s.push(batch(13));
    s.push({ op: 'joined', ref: s.last('join').ref, room: 'r1', epoch: E, seq: 13, members: 1, recovered: true });
    s.push(batch(11)); // replay: 11 only, 12-13 never come
    s.push(batch(14));
    await clock.advance(2999);
    expect(s.ops('join')).toHaveLength(2);
    await clock.advance(1);
    expect(s.ops('join')).toHaveLength(3);
    expect(s.last('join')).toMatchObject({ since: 11 });
    s.push({ op: 'joined', ref: s.last('join').ref, room: 'r1', epoch: E, seq: 14, members: 1, recovered: false });
    expect(of('reset')).toEqual([expect.objectContaining({ seq: 14, previousSeq: 11, reason: 'not-recovered' })]);
    s.push(batch(15));
    expect(ranges(of)).toEqual(['11-11', '15-15']);
    await rc.close();
  });
});

describe('moderation events', () => {
  it('kicked: emits, forgets the room and does not rejoin it', async () => {
    const { t, clock, rc, of } = setup();
    const s = await open(t);
    await joinR1(rc, s);
    s.push({ op: 'kicked', room: 'r1', reason: 'spam' });
    expect(of('kicked')).toEqual([{ room: 'r1', reason: 'spam' }]);
    expect(rc.rooms()).toEqual([]);
    s.serverClose(1006);
    await clock.advance(1000);
    const s2 = await open(t);
    expect(s2.ops('join')).toEqual([]);
    await rc.close();
  });

  it('a rejoin refused with KICKED is reported as kicked', async () => {
    const { t, clock, rc, of } = setup();
    const s = await open(t);
    await joinR1(rc, s);
    s.serverClose(1006);
    await clock.advance(1000);
    const s2 = await open(t);
    s2.push({ op: 'error', ref: s2.last('join').ref, code: 'KICKED', message: 'kicked from this room', retryMs: 30_000 });
    expect(of('kicked')).toEqual([{ room: 'r1', reason: 'kicked from this room', retryMs: 30_000 }]);
    expect(rc.rooms()).toEqual([]);
    await rc.close();
  });

  it('muted: emits {room, until, all} and records it per room; members updates the count', async () => {
    const { t, rc, of } = setup();
    const s = await open(t);
    await joinR1(rc, s);
    s.push({ op: 'muted', room: 'r1', until: 123, all: true });
    s.push({ op: 'muted', room: 'r1', until: 456 });
    s.push({ op: 'members', room: 'r1', count: 42 });
    expect(of('muted')).toEqual([
      { room: 'r1', until: 123, all: true },
      { room: 'r1', until: 456, all: false },
    ]);
    expect(of('members')).toEqual([{ room: 'r1', count: 42 }]);
    expect(rc.rooms()[0]).toMatchObject({ mutedUntil: 456, roomMutedUntil: 123, members: 42 });
    await rc.close();
  });

  it('left without a ref (a refreshed token no longer allows the room): the room is forgotten, FORBIDDEN reported', async () => {
    const { t, rc, of } = setup();
    const s = await open(t);
    await joinR1(rc, s);
    s.push({ op: 'left', room: 'r1' });
    await flush();
    expect(rc.rooms()).toEqual([]);
    expect(of<{ code: string; room?: string }>('error')).toEqual([expect.objectContaining({ code: 'FORBIDDEN', room: 'r1' })]);
    s.push(batch(11));
    expect(of('batch')).toEqual([]);
    await rc.close();
  });
});
