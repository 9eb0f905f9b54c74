// Unit tests of requests and typed errors: every contract code reaches the caller as a
// RoomcastError with its code (and retryMs), plus the SDK's own codes.
import { describe, expect, it } from 'vitest';
import { connect, RoomcastError, SERVER_ERROR_CODES, type ConnectOptions } from '../src/client/index.js';
import { FakeClock, FakeTransport, flush, recordEvents, type FakeSocket } from '../src/client/testing.js';

function setup(opts: Partial<ConnectOptions> = {}) {
  const clock = new FakeClock();
  const t = new FakeTransport();
  const rc = connect({ url: 'ws://h1/ws', transport: t.factory, clock, random: () => 0.5, joinInUrl: false, ...opts });
  return { clock, t, rc, ...recordEvents(rc) };
}

async function joined(opts: Partial<ConnectOptions> = {}) {
  const ctx = setup(opts);
  await flush();
  ctx.t.last.accept();
  await flush();
  const s: FakeSocket = ctx.t.last;
  const p = ctx.rc.join('r1');
  await flush();
  s.push({ op: 'joined', ref: s.last('join').ref, room: 'r1', epoch: 'e', seq: 0, members: 1 });
  await p;
  return { ...ctx, s };
}

describe('requests', () => {
  it('likes go without ref, a second of taps in one frame, and resolve once written; a refusal of them is an error event', async () => {
    const { s, rc, clock } = await joined();
    const errors: unknown[] = [];
    rc.on('error', (e) => errors.push(e));
    const taps = [rc.like('r1'), rc.like('r1'), rc.like('r1')];
    await flush();
    expect(s.ops('send')).toEqual([]);
    await clock.advance(1000);
    await expect(Promise.all(taps)).resolves.toEqual([undefined, undefined, undefined]);
    expect(s.ops('send')).toEqual([{ op: 'send', room: 'r1', kind: 'like', count: 3 }]);
    // One tap is a plain like; ten (the server's default burst) go at once; a close sends what waits.
    const one = rc.like('r1');
    await clock.advance(1000);
    await one;
    const ten = Array.from({ length: 10 }, () => rc.like('r1'));
    await Promise.all(ten);
    expect(s.ops('send').slice(1)).toEqual([
      { op: 'send', room: 'r1', kind: 'like' },
      { op: 'send', room: 'r1', kind: 'like', count: 10 },
    ]);
    s.push({ op: 'error', code: 'RATE_LIMITED', message: 'too many like messages', retryMs: 100 });
    await flush();
    expect(errors).toMatchObject([{ code: 'RATE_LIMITED' }]);
    await expect(rc.like('nowhere')).rejects.toMatchObject({ code: 'NOT_JOINED' });
    const last = rc.like('r1');
    await rc.close();
    await last;
    expect(s.ops('send').at(-1)).toEqual({ op: 'send', room: 'r1', kind: 'like' });
    await expect(rc.like('r1')).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('likeBatchMs 0 sends a frame per like', async () => {
    const { s, rc } = await joined({ likeBatchMs: 0 });
    await Promise.all([rc.like('r1'), rc.like('r1')]);
    expect(s.ops('send')).toEqual([
      { op: 'send', room: 'r1', kind: 'like' },
      { op: 'send', room: 'r1', kind: 'like' },
    ]);
    await rc.close();
  });

  it('send and like {ack: true} resolve with the ack matched by ref', async () => {
    const { s, rc } = await joined();
    const a = rc.send('r1', 'hello');
    const b = rc.like('r1', { ack: true });
    await flush();
    const [sa, sb] = s.ops('send');
    expect(sa).toMatchObject({ op: 'send', room: 'r1', kind: 'chat', body: 'hello' });
    expect(sb).toEqual({ op: 'send', ref: expect.any(Number), room: 'r1', kind: 'like' });
    expect(sa!.ref).not.toBe(sb!.ref);
    s.push({ op: 'ack', ref: sb!.ref, shown: true, seq: 2 }); // out of order on purpose
    s.push({ op: 'ack', ref: sa!.ref, shown: false });
    await expect(a).resolves.toEqual({ shown: false });
    await expect(b).resolves.toEqual({ shown: true, seq: 2 });
    await rc.close();
  });

  it('kick, mute and ping', async () => {
    const { s, rc } = await joined();
    const k = rc.kick('r1', 'bob', { seconds: 30, reason: 'spam' });
    const m = rc.mute('r1', { seconds: 60 });
    const p = rc.ping();
    await flush();
    expect(s.last('kick')).toMatchObject({ room: 'r1', uid: 'bob', seconds: 30, reason: 'spam' });
    expect(s.last('mute')).toMatchObject({ room: 'r1', seconds: 60 });
    expect(s.last('mute').uid).toBeUndefined();
    s.push({ op: 'ack', ref: s.last('kick').ref, shown: true });
    s.push({ op: 'ack', ref: s.last('mute').ref, shown: true });
    s.push({ op: 'pong', ref: s.last('ping').ref, ts: 777 });
    await expect(k).resolves.toBeUndefined();
    await expect(m).resolves.toBeUndefined();
    await expect(p).resolves.toBe(777);
    await rc.close();
  });
});

describe('typed errors', () => {
  it.each(SERVER_ERROR_CODES.map((c) => [c]))('%s from the server rejects the request with that code', async (code) => {
    const { s, rc } = await joined();
    const p = rc.send('r1', 'x');
    await flush();
    s.push({ op: 'error', ref: s.last('send').ref, code, message: `server says ${code}`, retryMs: code === 'RATE_LIMITED' || code === 'MUTED' ? 1500 : undefined });
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RoomcastError);
    expect(err).toMatchObject({ code, message: `server says ${code}`, room: 'r1', fromServer: true });
    if (code === 'RATE_LIMITED' || code === 'MUTED') expect((err as RoomcastError).retryMs).toBe(1500);
    else expect((err as RoomcastError).retryMs).toBeUndefined();
    await rc.close();
  });

  it('join refusals reject the join (FORBIDDEN, TOO_MANY_ROOMS, KICKED) and forget the room', async () => {
    const { s, rc, of } = await joined();
    for (const code of ['FORBIDDEN', 'TOO_MANY_ROOMS', 'KICKED'] as const) {
      const p = rc.join(`x${code}`);
      await flush();
      s.push({ op: 'error', ref: s.last('join').ref, code, message: code, retryMs: code === 'KICKED' ? 60_000 : undefined });
      await expect(p).rejects.toMatchObject({ code, room: `x${code}` });
    }
    expect(rc.rooms().map((r) => r.room)).toEqual(['r1']);
    expect(of('error')).toEqual([]); // the caller got them
    expect(of('kicked')).toEqual([]); // never joined, so not "kicked out"
    await rc.close();
  });

  it('a join refused through the URL query (no ref) rejects that join', async () => {
    const { t, rc } = setup({ joinInUrl: true });
    const p = rc.join('secret');
    await flush();
    expect(t.last.query.get('room')).toBe('secret');
    t.last.accept();
    t.last.push({ op: 'error', code: 'FORBIDDEN', message: 'token does not allow this room' });
    await expect(p).rejects.toMatchObject({ code: 'FORBIDDEN', room: 'secret' });
    await rc.close();
  });

  it('a first join refused with RATE_LIMITED is retried after retryMs', async () => {
    const { s, rc, clock } = await joined();
    const p = rc.join('r2');
    await flush();
    s.push({ op: 'error', ref: s.last('join').ref, code: 'RATE_LIMITED', message: 'too many joins', retryMs: 200 });
    await clock.advance(500);
    expect(s.ops('join').filter((j) => j.room === 'r2')).toHaveLength(2);
    s.push({ op: 'joined', ref: s.last('join').ref, room: 'r2', epoch: 'e', seq: 0, members: 1 });
    await expect(p).resolves.toMatchObject({ room: 'r2' });
    await rc.close();
  });

  it('checks locally: BAD_ROOM, NOT_JOINED, empty text, DISCONNECTED before open', async () => {
    const { t, rc } = setup();
    await expect(rc.send('r1', 'x')).rejects.toMatchObject({ code: 'DISCONNECTED' });
    await flush();
    t.last.accept();
    await expect(rc.join('bad room!')).rejects.toMatchObject({ code: 'BAD_ROOM' });
    await expect(rc.send('bad room!', 'x')).rejects.toMatchObject({ code: 'BAD_ROOM' });
    await expect(rc.send('elsewhere', 'x')).rejects.toMatchObject({ code: 'NOT_JOINED', room: 'elsewhere' });
    await expect(rc.send('elsewhere', '')).rejects.toMatchObject({ code: 'BAD_FRAME' });
    await expect(rc.join('r', { since: -1 })).rejects.toMatchObject({ code: 'BAD_FRAME' });
    expect(t.last.sent).toEqual([]);
    await rc.close();
  });

  it('DISCONNECTED when the connection drops with a request in flight; TIMEOUT without a reply', async () => {
    const { s, rc, clock } = await joined({ requestTimeoutMs: 3000 });
    const lost = rc.send('r1', 'a');
    await flush();
    s.serverClose(1006);
    await expect(lost).rejects.toMatchObject({ code: 'DISCONNECTED', room: 'r1', fromServer: false });
    expect(clock.pending().length).toBeGreaterThan(0); // the reconnect is scheduled
    await rc.close();

    const again = await joined({ requestTimeoutMs: 3000 });
    const slow = again.rc.send('r1', 'a');
    const err = slow.catch((e: unknown) => e);
    await again.clock.advance(3000);
    expect(await err).toMatchObject({ code: 'TIMEOUT' });
    // a late ack is ignored
    again.s.push({ op: 'ack', ref: again.s.last('send').ref, shown: true, seq: 1 });
    await again.rc.close();
  });

  it('CLOSED for requests and joins after close()', async () => {
    const { s, rc } = await joined();
    const p = rc.send('r1', 'a');
    const j = rc.join('r2');
    await flush();
    expect(s.ops('send')).toHaveLength(1);
    await rc.close();
    await expect(p).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(j).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(rc.send('r1', 'b')).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(rc.join('r3')).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('unsolicited errors (no ref) go to the error event', async () => {
    const { s, rc, of } = await joined();
    s.push({ op: 'error', code: 'BAD_FRAME', message: 'frames must be binary' });
    expect(of('error')).toEqual([expect.objectContaining({ code: 'BAD_FRAME', message: 'frames must be binary' })]);
    expect(of('error')[0]).toBeInstanceOf(RoomcastError);
    await rc.close();
  });

  it('undecodable server frames are PROTOCOL errors and do not break the stream', async () => {
    const { s, rc, of } = await joined();
    s.pushRaw(new Uint8Array([0xc1]));
    s.push({ op: 'batch', room: 'r1', epoch: 'e', from: 1, to: 1, msgs: [] });
    expect(of<{ code: string }>('error').map((e) => e.code)).toEqual(['PROTOCOL']);
    expect(of('batch')).toHaveLength(1);
    await rc.close();
  });

  it('a throwing listener does not break the client', async () => {
    const { s, rc, of } = await joined();
    const thrown: unknown[] = [];
    const onErr = (e: unknown) => thrown.push(e);
    process.on('uncaughtException', onErr);
    rc.on('batch', () => {
      throw new Error('app bug');
    });
    s.push({ op: 'batch', room: 'r1', epoch: 'e', from: 1, to: 1, msgs: [] });
    s.push({ op: 'batch', room: 'r1', epoch: 'e', from: 2, to: 2, msgs: [] });
    await flush();
    process.off('uncaughtException', onErr);
    expect(of('batch')).toHaveLength(2);
    expect(thrown).toHaveLength(2);
    await rc.close();
  });
});
