// PROTOCOL §5: every error code a client can provoke, with the documented default limits
// (chat body 300 bytes, chat 1/s burst 3, likes 10/s, joins 5/s, 8 rooms per connection).
// REJECTED (content review) and UNAVAILABLE (a failing bus) are covered elsewhere.
import { encode } from '@msgpack/msgpack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { sleep, startTestNode, type Client, type Frame } from './helpers.js';
import { closeAll, encodeWithBytes, member, nextRef, request, uniq, user } from './ws-helpers.js';

/** Sends raw bytes (or text) and resolves with the next error frame. */
async function errorFor(c: Client, data: Uint8Array | string, binary = true): Promise<Frame> {
  const n = c.frames.filter((f) => f.op === 'error').length;
  c.sendRaw(data, binary);
  await c.waitFor(() => c.frames.filter((f) => f.op === 'error').length > n);
  return c.frames.filter((f) => f.op === 'error')[n]!;
}

describe('error codes (default limits)', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20 });
  });
  afterAll(() => node.stop());

  describe('BAD_FRAME', () => {
    const cases: Array<[string, () => Uint8Array | string, boolean?]> = [
      ['a text frame (even holding valid MessagePack text)', () => '{"op":"ping"}', false],
      ['a text frame with MessagePack bytes', () => Buffer.from(encode({ op: 'ping' })).toString('latin1'), false],
      ['an empty binary frame', () => new Uint8Array(0)],
      ['truncated MessagePack', () => encode({ op: 'send', room: 'r', kind: 'chat', body: 'hello' }).slice(0, 12)],
      ['a map header with no entries following', () => new Uint8Array([0x83])],
      ['an array instead of a map', () => encode([{ op: 'ping' }])],
      ['a number', () => encode(42)],
      ['a string', () => encode('ping')],
      ['nil', () => encode(null)],
      ['a map without op', () => encode({ room: 'r', ref: 1 })],
      ['an empty map', () => encode({})],
      ['op that is a number', () => encode({ op: 1 })],
      ['op that is a map', () => encode({ op: { name: 'ping' } })],
      ['trailing bytes after the map', () => Buffer.concat([encode({ op: 'ping' }), Buffer.from([0xc0])])],
      ['two maps in one frame', () => Buffer.concat([encode({ op: 'ping' }), encode({ op: 'ping' })])],
      ['reserved byte 0xc1', () => new Uint8Array([0xc1])],
    ];
    for (const [what, make, binary] of cases) {
      it(what, async () => {
        const c = await user(node, uniq('bf'));
        const err = await errorFor(c, make(), binary ?? true);
        expect(err).toMatchObject({ op: 'error', code: 'BAD_FRAME', message: expect.any(String) });
        // The socket is still usable.
        expect(await request(c, { op: 'ping' })).toMatchObject({ op: 'pong' });
        await closeAll(c);
      });
    }

    const wrongTypes: Array<[string, Record<string, unknown>]> = [
      ['room is a number', { op: 'join', room: 12 }],
      ['room is a list', { op: 'join', room: ['lobby'] }],
      ['room is missing', { op: 'join' }],
      ['since is a string', { op: 'join', room: 'r', since: '5' }],
      ['since is negative', { op: 'join', room: 'r', since: -1 }],
      ['since is fractional', { op: 'join', room: 'r', since: 1.5 }],
      ['epoch is a number', { op: 'join', room: 'r', since: 0, epoch: 5 }],
      ['kind is a number', { op: 'send', room: 'r', kind: 1, body: 'x' }],
      ['kind is missing', { op: 'send', room: 'r', body: 'x' }],
      ['body is a number', { op: 'send', room: 'r', kind: 'chat', body: 42 }],
      ['body is a map', { op: 'send', room: 'r', kind: 'chat', body: { text: 'x' } }],
      ['body is missing', { op: 'send', room: 'r', kind: 'chat' }],
      ['body is empty', { op: 'send', room: 'r', kind: 'chat', body: '' }],
      ['kick uid is a number', { op: 'kick', room: 'r', uid: 7 }],
      ['kick uid is missing', { op: 'kick', room: 'r' }],
      ['mute seconds is a string', { op: 'mute', room: 'r', uid: 'x', seconds: '10' }],
      ['mute seconds is negative', { op: 'mute', room: 'r', uid: 'x', seconds: -10 }],
      ['leave room is a bool', { op: 'leave', room: true }],
    ];
    it('wrong field types get BAD_FRAME with the ref echoed', async () => {
      let c = await user(node, uniq('types'));
      let sent = 0;
      for (const [what, frame] of wrongTypes) {
        if (++sent % 8 === 0) {
          await closeAll(c); // stay under the bad-frame limit per connection
          c = await user(node, uniq('types'));
        }
        const ref = nextRef();
        c.send({ ...frame, ref });
        expect(await c.reply(ref), what).toMatchObject({ op: 'error', code: 'BAD_FRAME', ref });
      }
      await closeAll(c);
    });

    it('ref that is not an unsigned integer is BAD_FRAME (and not echoed)', async () => {
      const c = await user(node, uniq('badref'));
      for (const ref of ['7', -1, 1.5, true]) {
        const err = await errorFor(c, encode({ op: 'ping', ref }));
        expect(err.code).toBe('BAD_FRAME');
        expect(err.ref).toBeUndefined();
      }
      expect(c.frames.some((f) => f.op === 'pong')).toBe(false);
      await closeAll(c);
    });

    it('a chat body that is not valid UTF-8 (and a room that is not) is BAD_FRAME', async () => {
      const room = uniq('utf8');
      const { c } = await member(node, uniq('utf8'), room);
      const ref = nextRef();
      const bad = encodeWithBytes({ op: 'send', room, kind: 'chat', body: 'ab@@cd', ref }, '@@', new Uint8Array([0xff, 0xfe]));
      expect(await errorFor(c, bad)).toMatchObject({ code: 'BAD_FRAME', ref });
      const lone = encodeWithBytes({ op: 'send', room, kind: 'chat', body: 'x###', ref }, '###', new Uint8Array([0xed, 0xa0, 0x80])); // a UTF-16 surrogate
      expect(await errorFor(c, lone)).toMatchObject({ code: 'BAD_FRAME' });
      const overlong = encodeWithBytes({ op: 'send', room, kind: 'chat', body: 'x@@', ref }, '@@', new Uint8Array([0xc0, 0xaf]));
      expect(await errorFor(c, overlong)).toMatchObject({ code: 'BAD_FRAME' });
      const badRoom = encodeWithBytes({ op: 'join', room: 'r@@m' }, '@@', new Uint8Array([0xc3, 0x28]));
      expect((await errorFor(c, badRoom)).code).toMatch(/^(BAD_FRAME|BAD_ROOM)$/);
      // Nothing of it reached the room.
      await sleep(80);
      expect(c.batches(room)).toEqual([]);
      await closeAll(c);
    });

    it('a MessagePack bin where the contract says string is BAD_FRAME (op and body are strings)', async () => {
      const room = uniq('bin');
      const { c } = await member(node, uniq('bin'), room);
      const bin = (s: string) => new Uint8Array(Buffer.from(s));
      const r1 = nextRef();
      c.send({ op: bin('ping'), ref: r1 });
      expect(await c.reply(r1)).toMatchObject({ op: 'error', code: 'BAD_FRAME', ref: r1 });
      const r2 = nextRef();
      c.send({ op: 'send', room, kind: 'chat', body: bin('binary body'), ref: r2 });
      expect(await c.reply(r2)).toMatchObject({ op: 'error', code: 'BAD_FRAME', ref: r2 });
      await closeAll(c);
    });

    it('strings in every str header format are read exactly once decoded; bin in every format is BAD_FRAME', async () => {
      // The frame is decoded once with values as bytes; the header before a value tells str
      // from bin (validate.ts). Non-minimal headers are valid MessagePack and must work too.
      const room = uniq('hdr');
      const { c } = await member(node, uniq('hdr'), room);
      const { c: b } = await member(node, uniq('hdr-b'), room);
      const head = (tag: number, n: number, width: number) => [tag, ...[...Array(width)].map((_, i) => (n >> (8 * (width - 1 - i))) & 0xff)];
      const str = (s: string, form: 'fix' | 8 | 16 | 32) => {
        const v = Buffer.from(s);
        const h = form === 'fix' ? [0xa0 | v.byteLength] : form === 8 ? head(0xd9, v.byteLength, 1) : form === 16 ? head(0xda, v.byteLength, 2) : head(0xdb, v.byteLength, 4);
        return Buffer.concat([Buffer.from(h), v]);
      };
      const bin = (s: string, form: 8 | 16 | 32) => {
        const v = Buffer.from(s);
        return Buffer.concat([Buffer.from(head(form === 8 ? 0xc4 : form === 16 ? 0xc5 : 0xc6, v.byteLength, form / 8)), v]);
      };
      const map = (entries: Array<[string, Buffer]>) => Buffer.concat([Buffer.from([0x80 | entries.length]), ...entries.flatMap(([k, v]) => [str(k, 'fix'), v])]);
      const uint = (n: number) => Buffer.from(head(0xce, n, 4));
      // A body with a BOM, multi-byte text and more than 32 bytes: kept byte for byte.
      const body = '\ufeff弹幕 ok — ' + 'é'.repeat(20);
      for (const form of [8, 16, 32] as const) {
        const ref = nextRef();
        c.sendRaw(map([['op', str('send', form)], ['room', str(room, form)], ['kind', str('chat', form)], ['body', str(body + form, form)], ['ref', uint(ref)]]));
        expect(await c.reply(ref), `str${form}`).toMatchObject({ op: 'ack', ref, shown: true });
        await b.waitFor((f) => f.op === 'batch' && (f.msgs as Array<{ b: string }>).some((m) => m.b === body + form));
      }
      for (const form of [8, 16, 32] as const) {
        const ref = nextRef();
        c.sendRaw(map([['op', str('send', 'fix')], ['room', str(room, 'fix')], ['kind', str('chat', 'fix')], ['body', bin('binary body', form)], ['ref', uint(ref)]]));
        expect(await c.reply(ref), `bin${form} body`).toMatchObject({ op: 'error', code: 'BAD_FRAME', ref });
        const r2 = nextRef();
        c.sendRaw(map([['op', bin('ping', form)], ['ref', uint(r2)]]));
        expect(await c.reply(r2), `bin${form} op`).toMatchObject({ op: 'error', code: 'BAD_FRAME', ref: r2 });
      }
      // A room id that is not ASCII is no room id; a join's epoch that is not UTF-8 is BAD_FRAME.
      const r3 = nextRef();
      c.sendRaw(map([['op', str('join', 'fix')], ['room', str('raum-ä', 'fix')], ['ref', uint(r3)]]));
      expect(await c.reply(r3)).toMatchObject({ op: 'error', code: 'BAD_ROOM', ref: r3 });
      const r4 = nextRef();
      c.sendRaw(map([['op', str('join', 'fix')], ['room', str(uniq('e'), 'fix')], ['epoch', Buffer.from([0xa2, 0xff, 0xfe])], ['ref', uint(r4)]]));
      expect(await c.reply(r4)).toMatchObject({ op: 'error', code: 'BAD_FRAME', ref: r4 });
      await closeAll(c, b);
    });
  });

  it('UNKNOWN_OP for a map whose op is not a client op (ref echoed)', async () => {
    const c = await user(node, uniq('unknown'));
    for (const op of ['dance', 'PING', 'joined', 'batch', 'welcome', '']) {
      const ref = nextRef();
      c.send({ op, ref });
      expect(await c.reply(ref), op).toMatchObject({ op: 'error', code: 'UNKNOWN_OP', ref });
    }
    await closeAll(c);
  });

  it('BAD_ROOM: characters outside A-Z a-z 0-9 _ . : -, 65 chars, empty — on join, leave and send', async () => {
    const c = await user(node, uniq('badroom'));
    for (const room of ['a b', 'a/b', 'ä', 'room#1', 'x'.repeat(65), '', 'emoji😀', 'tab\t']) {
      for (const op of [{ op: 'join', room }, { op: 'leave', room }, { op: 'send', room, kind: 'chat', body: 'x' }]) {
        const ref = nextRef();
        c.send({ ...op, ref });
        expect(await c.reply(ref), JSON.stringify(op)).toMatchObject({ op: 'error', code: 'BAD_ROOM', ref });
      }
    }
    // BAD_ROOM is not a bad frame: the connection is still open after 24 of them.
    expect(await request(c, { op: 'ping' })).toMatchObject({ op: 'pong' });
    await closeAll(c);
  });

  it('room ids of 64 chars and with every allowed character are fine', async () => {
    const c = await user(node, uniq('goodroom'));
    for (const room of ['x'.repeat(64), 'AZaz09_.:-', 'a']) {
      expect(await request(c, { op: 'join', room })).toMatchObject({ op: 'joined', room });
    }
    await closeAll(c);
  });

  it('TOO_LARGE: a chat body of 301 bytes; exactly 300 bytes is fine (bytes, not chars)', async () => {
    const room = uniq('large');
    const { c } = await member(node, uniq('large'), room);
    expect(await request(c, { op: 'send', room, kind: 'chat', body: 'a'.repeat(301) })).toMatchObject({ op: 'error', code: 'TOO_LARGE' });
    expect(await request(c, { op: 'send', room, kind: 'chat', body: 'é'.repeat(150) + 'a' })).toMatchObject({ op: 'error', code: 'TOO_LARGE' });
    expect(await request(c, { op: 'send', room, kind: 'chat', body: 'a'.repeat(300) })).toMatchObject({ op: 'ack', shown: true });
    expect(await request(c, { op: 'send', room, kind: 'chat', body: 'é'.repeat(150) })).toMatchObject({ op: 'ack', shown: true });
    const bodies = [] as string[];
    await c.waitFor(() => {
      bodies.splice(0, bodies.length, ...c.batches(room).flatMap((b) => (b.msgs as Array<{ b: string }>).map((m) => m.b)));
      return bodies.length >= 2;
    });
    expect(bodies).toEqual(['a'.repeat(300), 'é'.repeat(150)]);
    await closeAll(c);
  });

  it('RATE_LIMITED: the 4th immediate chat (1/s, burst 3), with retryMs; fine again after retryMs', async () => {
    const room = uniq('rate');
    const { c } = await member(node, uniq('chatty'), room);
    const replies = await Promise.all([1, 2, 3, 4].map((i) => request(c, { op: 'send', room, kind: 'chat', body: `m${i}` })));
    expect(replies.slice(0, 3).map((r) => r.op)).toEqual(['ack', 'ack', 'ack']);
    const limited = replies[3]!;
    expect(limited).toMatchObject({ op: 'error', code: 'RATE_LIMITED' });
    expect(limited.retryMs).toBeGreaterThan(0);
    expect(limited.retryMs).toBeLessThanOrEqual(1000);
    await sleep((limited.retryMs as number) + 30);
    expect(await request(c, { op: 'send', room, kind: 'chat', body: 'later' })).toMatchObject({ op: 'ack' });
    await closeAll(c);
  });

  it('RATE_LIMITED is per user, across that user’s connections', async () => {
    const room = uniq('rate2');
    const uid = uniq('twice');
    const { c: a } = await member(node, uid, room);
    const { c: b } = await member(node, uid, room);
    expect(await request(a, { op: 'send', room, kind: 'chat', body: '1' })).toMatchObject({ op: 'ack' });
    expect(await request(b, { op: 'send', room, kind: 'chat', body: '2' })).toMatchObject({ op: 'ack' });
    expect(await request(a, { op: 'send', room, kind: 'chat', body: '3' })).toMatchObject({ op: 'ack' });
    expect(await request(b, { op: 'send', room, kind: 'chat', body: '4' })).toMatchObject({ op: 'error', code: 'RATE_LIMITED' });
    // Other users are not affected.
    const { c: other } = await member(node, uniq('other'), room);
    expect(await request(other, { op: 'send', room, kind: 'chat', body: '5' })).toMatchObject({ op: 'ack' });
    await closeAll(a, b, other);
  });

  it('RATE_LIMITED: the 11th immediate like (10/s), with retryMs ≤ 100', async () => {
    const room = uniq('likes');
    const { c } = await member(node, uniq('liker'), room);
    const replies = await Promise.all(Array.from({ length: 11 }, () => request(c, { op: 'send', room, kind: 'like' })));
    expect(replies.slice(0, 10).every((r) => r.op === 'ack')).toBe(true);
    expect(replies[10]).toMatchObject({ op: 'error', code: 'RATE_LIMITED' });
    expect(replies[10]!.retryMs).toBeGreaterThan(0);
    expect(replies[10]!.retryMs).toBeLessThanOrEqual(100);
    await closeAll(c);
  });

  it('RATE_LIMITED: the 6th immediate join (5/s), with retryMs ≤ 200', async () => {
    const c = await user(node, uniq('joiner'));
    const replies = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => request(c, { op: 'join', room: uniq(`j${i}`) })));
    expect(replies.slice(0, 5).every((r) => r.op === 'joined')).toBe(true);
    expect(replies[5]).toMatchObject({ op: 'error', code: 'RATE_LIMITED' });
    expect(replies[5]!.retryMs).toBeGreaterThan(0);
    expect(replies[5]!.retryMs).toBeLessThanOrEqual(200);
    await closeAll(c);
  });

  it('NOT_JOINED: send (chat and like) and leave for a room not joined; send after leaving', async () => {
    const room = uniq('nj');
    const c = await user(node, uniq('nj'));
    expect(await request(c, { op: 'send', room, kind: 'chat', body: 'x' })).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    expect(await request(c, { op: 'send', room, kind: 'like' })).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    expect(await request(c, { op: 'leave', room })).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    await request(c, { op: 'join', room });
    await request(c, { op: 'leave', room });
    expect(await request(c, { op: 'send', room, kind: 'chat', body: 'x' })).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    await closeAll(c);
  });

  it('FORBIDDEN: kinds other than chat and like; kick/mute by a viewer', async () => {
    const room = uniq('forbidden');
    const { c } = await member(node, uniq('viewer'), room);
    const { c: victim } = await member(node, uniq('victim'), room);
    for (const kind of ['gift', 'system', 'custom', 'Chat']) {
      expect(await request(c, { op: 'send', room, kind, body: 'x' }), kind).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    }
    const victimUid = victim.frames[0]!.uid;
    expect(await request(c, { op: 'kick', room, uid: victimUid })).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    expect(await request(c, { op: 'mute', room, uid: victimUid, seconds: 10 })).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    // Nothing happened to the victim.
    expect(await request(victim, { op: 'send', room, kind: 'chat', body: 'still here' })).toMatchObject({ op: 'ack', shown: true });
    expect(victim.frames.some((f) => f.op === 'kicked' || f.op === 'muted')).toBe(false);
    await closeAll(c, victim);
  });

  it('TOO_MANY_ROOMS: the 9th room (default 8); rejoining one of the 8 is fine, and so is a new one after a leave', async () => {
    const c = await user(node, uniq('rooms'));
    const rooms = Array.from({ length: 9 }, (_, i) => uniq(`many${i}`));
    // Joins are limited to 5/s: pace them as a client would, honouring retryMs.
    const join = async (room: string): Promise<Frame> => {
      for (;;) {
        const r = await request(c, { op: 'join', room });
        if (r.code !== 'RATE_LIMITED') return r;
        await sleep((r.retryMs as number) + 10);
      }
    };
    for (const room of rooms.slice(0, 8)) expect(await join(room)).toMatchObject({ op: 'joined', room });
    expect(await join(rooms[8]!)).toMatchObject({ op: 'error', code: 'TOO_MANY_ROOMS' });
    expect(await join(rooms[0]!)).toMatchObject({ op: 'joined', room: rooms[0] });
    await request(c, { op: 'leave', room: rooms[1] });
    expect(await join(rooms[8]!)).toMatchObject({ op: 'joined', room: rooms[8] });
    await closeAll(c);
  });
});
