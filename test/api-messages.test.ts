// POST /v1/rooms/:room/messages and POST /v1/broadcast (PROTOCOL §6): validation, size
// limits, the API rate, and what real WebSocket members receive.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, joinedClient, startTestNode, SECRET, type Client } from './helpers.js';
import { api, chat, delivered, expectError, postShown, waitMsg } from './api-helpers.js';

const BASE = { apiKey: API_KEY, secret: SECRET, tickMs: 20 } as const;

describe('request validation', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode(BASE);
  });
  afterAll(() => node?.stop());

  const messages = '/v1/rooms/val-room/messages';
  const ok = { kind: 'system', body: 'hi' };

  const badMessages: Array<[string, unknown]> = [
    ['kind uppercase', { kind: 'System', body: 'hi' }],
    ['kind with a space', { kind: 'my kind', body: 'hi' }],
    ['kind too long (33)', { kind: 'k'.repeat(33), body: 'hi' }],
    ['kind empty', { kind: '', body: 'hi' }],
    ['kind like', { kind: 'like', body: 'hi' }],
    ['kind missing', { body: 'hi' }],
    ['kind a number', { kind: 7, body: 'hi' }],
    ['body empty', { kind: 'system', body: '' }],
    ['body a number', { kind: 'system', body: 5 }],
    ['body an array', { kind: 'system', body: ['a'] }],
    ['body null', { kind: 'system', body: null }],
    ['body missing', { kind: 'system' }],
    ['uid too long (65)', { ...ok, uid: 'u'.repeat(65) }],
    ['uid empty', { ...ok, uid: '' }],
    ['uid a number', { ...ok, uid: 1 }],
    ['name too long (33)', { ...ok, name: 'n'.repeat(33) }],
    ['name empty', { ...ok, name: '' }],
    ['priority bogus', { ...ok, priority: 'urgent' }],
    ['priority uppercase', { ...ok, priority: 'HIGH' }],
    ['unknown field', { ...ok, extra: 1 }],
    ['x a string', { ...ok, x: 'extras' }],
    ['x an array', { ...ok, x: [1, 2] }],
    ['x a number', { ...ok, x: 3 }],
    ['top-level array', [ok]],
    ['top-level null', null],
    ['top-level string', 'hello'],
  ];
  it.each(badMessages)('POST messages: %s -> 400 BAD_REQUEST', async (what, body) => {
    const res = await api(node, 'POST', messages, body);
    expectError(res, 400, 'BAD_REQUEST', what);
  });

  it('names the failing field in the message', async () => {
    expect((await api(node, 'POST', messages, { kind: 'system', body: 'hi', name: 'n'.repeat(33) })).body.error.message).toMatch(/name/);
    expect((await api(node, 'POST', messages, { kind: 'Bad', body: 'hi' })).body.error.message).toMatch(/kind/);
  });

  it.each([
    ['not JSON', 'not json'],
    ['truncated JSON', '{"kind":"system","body":"hi"'],
    ['an empty body', ''],
    // MessagePack decoders refuse this key: members would get frames they cannot read.
    ['a __proto__ key in body', '{"kind":"gift","body":{"__proto__":{"x":1},"rose":1}}'],
    ['a __proto__ key in x', '{"kind":"system","body":"hi","x":{"a":{"__proto__":2}}}'],
    ['a __proto__ key spelled with escapes', '{"kind":"gift","body":{"\\u005f_proto\\u005f_":{"x":1}}}'],
  ])('POST messages with %s -> 400 BAD_REQUEST', async (what, raw) => {
    expectError(await api(node, 'POST', messages, undefined, { raw }), 400, 'BAD_REQUEST', what);
  });

  it('accepts the boundaries: kind of 32, uid of 64, name of 32, a map body, x', async () => {
    await postShown(node, 'val-room', { kind: 'k'.repeat(32), body: { a: 1 }, uid: 'u'.repeat(64), name: 'n'.repeat(32), priority: 'high', x: { y: [1] } });
    await postShown(node, 'val-room', { kind: 'a0_-', body: 'b', priority: 'normal' });
  });

  const badBroadcasts: Array<[string, unknown]> = [
    ['kind uppercase', { kind: 'SYSTEM', body: 'hi' }],
    ['kind like', { kind: 'like', body: 'hi' }],
    ['body empty', { kind: 'system', body: '' }],
    ['body a number', { kind: 'system', body: 1 }],
    ['uid (not a broadcast field)', { kind: 'system', body: 'hi', uid: 'a' }],
    ['priority (not a broadcast field)', { kind: 'system', body: 'hi', priority: 'high' }],
    ['x not a map', { kind: 'system', body: 'hi', x: 'no' }],
  ];
  it.each(badBroadcasts)('POST broadcast: %s -> 400 BAD_REQUEST', async (what, body) => {
    expectError(await api(node, 'POST', '/v1/broadcast', body), 400, 'BAD_REQUEST', what);
  });

  const badKicks: Array<[string, unknown]> = [
    ['uid missing', { reason: 'x' }],
    ['uid empty', { uid: '' }],
    ['uid too long', { uid: 'u'.repeat(65) }],
    ['reason too long (201)', { uid: 'a', reason: 'r'.repeat(201) }],
    ['seconds negative', { uid: 'a', seconds: -1 }],
    ['seconds fractional', { uid: 'a', seconds: 1.5 }],
    ['seconds a string', { uid: 'a', seconds: '5' }],
    ['seconds over a year', { uid: 'a', seconds: 365 * 86400 + 1 }],
    ['unknown field', { uid: 'a', until: 5 }],
  ];
  it.each(badKicks)('POST kick: %s -> 400 BAD_REQUEST', async (what, body) => {
    expectError(await api(node, 'POST', '/v1/rooms/val-room/kick', body), 400, 'BAD_REQUEST', what);
  });

  const badMutes: Array<[string, unknown]> = [
    ['seconds missing', { uid: 'a' }],
    ['seconds negative', { uid: 'a', seconds: -1 }],
    ['seconds fractional', { seconds: 0.5 }],
    ['uid too long', { uid: 'u'.repeat(65), seconds: 5 }],
    ['uid empty', { uid: '', seconds: 5 }],
    ['unknown field', { seconds: 5, all: true }],
  ];
  it.each(badMutes)('POST mute: %s -> 400 BAD_REQUEST', async (what, body) => {
    expectError(await api(node, 'POST', '/v1/rooms/val-room/mute', body), 400, 'BAD_REQUEST', what);
  });

  const badRooms = ['r'.repeat(65), 'bad%20room', 'a%2Fb', '%C3%BC', 'a%23b', 'a*'];
  it.each(badRooms)('room %s in the path -> 400 BAD_ROOM on every room route', async (room) => {
    expectError(await api(node, 'POST', `/v1/rooms/${room}/messages`, ok), 400, 'BAD_ROOM', 'messages');
    expectError(await api(node, 'GET', `/v1/rooms/${room}`), 400, 'BAD_ROOM', 'info');
    expectError(await api(node, 'POST', `/v1/rooms/${room}/kick`, { uid: 'a' }), 400, 'BAD_ROOM', 'kick');
    expectError(await api(node, 'POST', `/v1/rooms/${room}/mute`, { seconds: 1 }), 400, 'BAD_ROOM', 'mute');
  });

  it('accepts a 64-char room id of every allowed character class', async () => {
    const room = ('Az09_.:-'.repeat(8)).slice(0, 64);
    await postShown(node, room, ok);
    expect((await api(node, 'GET', `/v1/rooms/${encodeURIComponent(room)}`)).status).toBe(200);
  });
});

describe('size limits', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode(BASE);
  });
  afterAll(() => node?.stop());

  const path = '/v1/rooms/size-room/messages';

  it('refuses a body over 4 KB encoded with 413 TOO_LARGE', async () => {
    expectError(await api(node, 'POST', path, { kind: 'system', body: 'b'.repeat(4100) }), 413, 'TOO_LARGE', 'string body');
    expectError(await api(node, 'POST', path, { kind: 'gift', body: { blob: 'b'.repeat(4100) } }), 413, 'TOO_LARGE', 'map body');
    expectError(await api(node, 'POST', '/v1/broadcast', { kind: 'system', body: 'b'.repeat(4100) }), 413, 'TOO_LARGE', 'broadcast');
  });

  it('refuses x over 1 KB encoded with 413 TOO_LARGE', async () => {
    expectError(await api(node, 'POST', path, { kind: 'system', body: 'b', x: { pad: 'x'.repeat(1100) } }), 413, 'TOO_LARGE', 'x');
    expectError(await api(node, 'POST', '/v1/broadcast', { kind: 'system', body: 'b', x: { pad: 'x'.repeat(1100) } }), 413, 'TOO_LARGE', 'broadcast x');
  });

  it('accepts a body and an x just under the limits', async () => {
    // msgpack: a str16 header is 3 bytes; a fixmap with one fixstr key adds 1 + 4 bytes.
    await postShown(node, 'size-room', { kind: 'system', body: 'b'.repeat(4093) });
    await postShown(node, 'size-room', { kind: 'system', body: 'b', x: { pad: 'x'.repeat(1016) } });
    expectError(await api(node, 'POST', path, { kind: 'system', body: 'b'.repeat(4094) }), 413, 'TOO_LARGE', 'one byte over');
    expectError(await api(node, 'POST', path, { kind: 'system', body: 'b', x: { pad: 'x'.repeat(1017) } }), 413, 'TOO_LARGE', 'x one byte over');
  });

  // Padding with JSON whitespace keeps the message tiny: only the HTTP body limit can refuse it.
  const padded = (bytes: number, json: string) => json.slice(0, -1) + ' '.repeat(bytes - json.length) + '}';

  it('refuses a request body over 64 KiB with 413, on every POST route', async () => {
    const msg = padded(64 * 1024 + 1, JSON.stringify({ kind: 'system', body: 'hi' }));
    expect(msg.length).toBe(65537);
    expectError(await api(node, 'POST', path, undefined, { raw: msg }), 413, 'TOO_LARGE', 'messages');
    expectError(await api(node, 'POST', '/v1/broadcast', undefined, { raw: msg }), 413, 'TOO_LARGE', 'broadcast');
    const kick = padded(70_000, JSON.stringify({ uid: 'a' }));
    expectError(await api(node, 'POST', '/v1/rooms/size-room/kick', undefined, { raw: kick }), 413, 'TOO_LARGE', 'kick');
    const mute = padded(70_000, JSON.stringify({ uid: 'a', seconds: 1 }));
    expectError(await api(node, 'POST', '/v1/rooms/size-room/mute', undefined, { raw: mute }), 413, 'TOO_LARGE', 'mute');
  });

  it('refuses an over-64-KiB body sent without Content-Length (chunked)', async () => {
    const chunk = new TextEncoder().encode(' '.repeat(8192));
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('{"kind":"system","body":"hi"'));
        for (let n = 0; n < 9; n++) c.enqueue(chunk);
        c.enqueue(new TextEncoder().encode('}'));
        c.close();
      },
    });
    const res = await fetch(`http://127.0.0.1:${node.port}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ error: { code: 'TOO_LARGE', message: expect.any(String) } });
  });

  it('accepts a padded request body just under 64 KiB', async () => {
    const msg = padded(64 * 1024, JSON.stringify({ kind: 'system', body: 'hi' }));
    const res = await api(node, 'POST', path, undefined, { raw: msg });
    expect(res.status, res.text).toBe(202);
  });
});

describe('the API rate', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ ...BASE, apiRate: 3 });
  });
  afterAll(() => node?.stop());

  it('answers 429 RATE_LIMITED with Retry-After beyond apiRate per second per room', async () => {
    const post = (room: string) => api(node, 'POST', `/v1/rooms/${room}/messages`, { kind: 'system', body: 'x' });
    const first = await Promise.all([post('rate-a'), post('rate-a'), post('rate-a')]);
    for (const r of first) expect(r.status, r.text).toBe(202);
    const over = await post('rate-a');
    expectError(over, 429, 'RATE_LIMITED');
    const retry = over.headers.get('retry-after');
    expect(retry).toMatch(/^\d+$/);
    expect(Number(retry)).toBeGreaterThanOrEqual(1);
    expect(Number(retry)).toBeLessThanOrEqual(1);
    // Nothing was logged for the refused message: the log holds exactly the three.
    const info = await api(node, 'GET', '/v1/rooms/rate-a');
    expect(info.body.seq).toBeLessThanOrEqual(3);
    const seqs = first.map((r) => r.body.seq as number);
    expect(info.body.seq).toBe(Math.max(...seqs));
    // Another room has its own allowance.
    expect((await post('rate-b')).status).toBe(202);
  });

  it('allows one message per 1/apiRate seconds when apiRate is below 1', async () => {
    const slow = await startTestNode({ ...BASE, apiRate: 0.5 });
    try {
      const post = () => api(slow, 'POST', '/v1/rooms/rate-slow/messages', { kind: 'system', body: 'x' });
      const first = await post();
      expect({ status: first.status, body: first.body }, 'apiRate 0.5/s must still allow a first message').toEqual({
        status: 202,
        body: { seq: expect.any(Number), shown: true },
      });
      const second = await post();
      expectError(second, 429, 'RATE_LIMITED');
      expect(Number(second.headers.get('retry-after'))).toBe(2);
    } finally {
      await slow.stop();
    }
  });

  it('limits broadcasts too', async () => {
    const bc = () => api(node, 'POST', '/v1/broadcast', { kind: 'system', body: 'x' });
    const all = await Promise.all([bc(), bc(), bc(), bc(), bc()]);
    const limited = all.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThanOrEqual(2);
    for (const r of limited) {
      expectError(r, 429, 'RATE_LIMITED');
      expect(r.headers.get('retry-after')).toMatch(/^\d+$/);
    }
  });
});

describe('messages seen by real members', () => {
  let node: RoomcastNode;
  let member: Client;
  beforeAll(async () => {
    node = await startTestNode(BASE);
    member = await joinedClient(node, 'watcher', 'live');
  });
  afterAll(() => node?.stop());

  it('delivers a system message: 202 {seq, shown:true} and the member gets it with that seq', async () => {
    const before = Date.now();
    const seq = await postShown(node, 'live', { kind: 'system', body: 'starting soon' });
    const { batch, msg } = await waitMsg(member, 'live', (m) => m.b === 'starting soon');
    expect(batch.from as number).toBeLessThanOrEqual(seq);
    expect(batch.to as number).toBeGreaterThanOrEqual(seq);
    expect(msg).toEqual({ u: 'system', k: 'system', b: 'starting soon', t: expect.any(Number) });
    expect(msg.t).toBeGreaterThanOrEqual(before - 5);
    expect(msg.t).toBeLessThanOrEqual(Date.now() + 5);
  });

  it('delivers a gift with uid, name, a map body and x exactly', async () => {
    const seq = await postShown(node, 'live', { kind: 'gift', body: { item: 'rose', count: 3 }, uid: 'alice', name: 'Alice', x: { price: 5, tags: ['a'] } });
    const { batch, msg } = await waitMsg(member, 'live', (m) => m.k === 'gift');
    expect(msg).toEqual({ u: 'alice', n: 'Alice', k: 'gift', b: { item: 'rose', count: 3 }, t: expect.any(Number), x: { price: 5, tags: ['a'] } });
    expect(batch.from as number).toBeLessThanOrEqual(seq);
    expect(batch.to as number).toBeGreaterThanOrEqual(seq);
  });

  it('delivers a custom kind with priority, uid, name and x', async () => {
    const seq = await postShown(node, 'live', { kind: 'poll_vote-1', body: 'option B', uid: 'bob', name: 'Bob', priority: 'high', x: { poll: 7 } });
    const { batch, msg } = await waitMsg(member, 'live', (m) => m.k === 'poll_vote-1');
    expect(msg).toEqual({ u: 'bob', n: 'Bob', k: 'poll_vote-1', b: 'option B', t: expect.any(Number), x: { poll: 7 } });
    expect(batch.from as number).toBeLessThanOrEqual(seq);
    expect(batch.to as number).toBeGreaterThanOrEqual(seq);
  });

  it('gives consecutive posts increasing seqs, delivered in order', async () => {
    const s1 = await postShown(node, 'live', { kind: 'system', body: 'order-1' });
    const s2 = await postShown(node, 'live', { kind: 'system', body: 'order-2' });
    expect(s2).toBeGreaterThan(s1);
    await waitMsg(member, 'live', (m) => m.b === 'order-2');
    const bodies = delivered(member, 'live').map((m) => m.b);
    expect(bodies.indexOf('order-1')).toBeLessThan(bodies.indexOf('order-2'));
  });

  it('reaches a room that has no members yet (logged; a later joiner can recover it)', async () => {
    const seq = await postShown(node, 'empty-room', { kind: 'system', body: 'for later' });
    const info = await api(node, 'GET', '/v1/rooms/empty-room');
    expect(info.body).toMatchObject({ room: 'empty-room', members: 0, seq });
    const late = await joinedClient(node, 'late', 'empty-room');
    const joined = late.frames.find((f) => f.op === 'joined')!;
    expect(joined.seq).toBe(seq);
    await late.close();
  });
});

describe('priorities and the room budget', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ ...BASE, roomChatBudget: 1, chatRate: 100, chatBurst: 100 });
  });
  afterAll(() => node?.stop());

  it('samples out normal-priority custom kinds over the budget: 202 {shown:false}', async () => {
    const member = await joinedClient(node, 'w1', 'budget-a');
    const posts = await Promise.all(
      Array.from({ length: 10 }, (_v, i) => api(node, 'POST', '/v1/rooms/budget-a/messages', { kind: 'reaction', body: `r${i}`, uid: `u${i}` })),
    );
    for (const r of posts) expect(r.status, r.text).toBe(202);
    const shown = posts.filter((r) => r.body.shown === true);
    const hidden = posts.filter((r) => r.body.shown === false);
    expect(hidden.length).toBeGreaterThanOrEqual(8);
    for (const r of hidden) expect(r.body).toEqual({ shown: false });
    for (const r of shown) expect(r.body).toEqual({ shown: true, seq: expect.any(Number) });
    // The member gets exactly the shown ones.
    const marker = await postShown(node, 'budget-a', { kind: 'system', body: 'marker' });
    await waitMsg(member, 'budget-a', (m) => m.b === 'marker');
    expect(marker).toBeGreaterThan(0);
    expect(delivered(member, 'budget-a').filter((m) => m.k === 'reaction')).toHaveLength(shown.length);
    await member.close();
  });

  it('shares the budget between client chat and normal-priority API messages', async () => {
    const talker = await joinedClient(node, 'talker', 'budget-b');
    // Client chat spends the room's only message of this second...
    expect(await chat(talker, 'budget-b', 'first')).toMatchObject({ op: 'ack', shown: true });
    // ...so a normal-priority API message (custom kinds default to normal) is sampled out,
    expect((await api(node, 'POST', '/v1/rooms/budget-b/messages', { kind: 'reaction', body: 'late' })).body).toEqual({ shown: false });
    expect((await api(node, 'POST', '/v1/rooms/budget-b/messages', { kind: 'chat', body: 'late', priority: 'normal' })).body).toEqual({ shown: false });
    // ...while high priority, system and gift (even when asked for normal) are not.
    await postShown(node, 'budget-b', { kind: 'reaction', body: 'vip', priority: 'high' });
    await postShown(node, 'budget-b', { kind: 'system', body: 'sys' });
    await postShown(node, 'budget-b', { kind: 'gift', body: 'g', priority: 'normal' });
    await talker.close();
  });

  it('spends the budget on API messages first when they come first', async () => {
    const talker = await joinedClient(node, 'talker2', 'budget-c');
    await postShown(node, 'budget-c', { kind: 'reaction', body: 'api first' });
    expect(await chat(talker, 'budget-c', 'too late')).toEqual({ op: 'ack', ref: expect.any(Number), shown: false });
    await talker.close();
  });

  it('never drops system, gift or priority high under a chat flood', async () => {
    const watcher = await joinedClient(node, 'flood-watch', 'flood');
    const flooders = await Promise.all(Array.from({ length: 5 }, (_v, i) => joinedClient(node, `flooder${i}`, 'flood')));
    const sends: Array<Promise<unknown>> = [];
    for (let round = 0; round < 4; round++) {
      for (const [i, f] of flooders.entries()) sends.push(chat(f, 'flood', `spam ${i}/${round}`));
      sends.push(api(node, 'POST', '/v1/rooms/flood/messages', { kind: 'reaction', body: `normal ${round}` }));
    }
    const high = [
      ...['s1', 's2', 's3'].map((b) => ({ kind: 'system', body: b })),
      ...['g1', 'g2', 'g3'].map((b) => ({ kind: 'gift', body: b, uid: 'fan' })),
      ...['h1', 'h2', 'h3'].map((b) => ({ kind: 'banner', body: b, priority: 'high' })),
    ];
    const highRes = Promise.all(high.map((m) => api(node, 'POST', '/v1/rooms/flood/messages', m)));
    const [floodRes, highResults] = await Promise.all([Promise.all(sends), highRes]);
    for (const r of highResults) expect(r.body, r.text).toEqual({ seq: expect.any(Number), shown: true });
    const acks = floodRes.filter((r): r is { op: string; shown: boolean } => (r as { op?: string }).op === 'ack');
    expect(acks.filter((a) => a.shown === false).length).toBeGreaterThan(10);
    const last = Math.max(...highResults.map((r) => r.body.seq as number));
    await watcher.waitFor((f) => f.op === 'batch' && (f.to as number) >= last);
    const got = delivered(watcher, 'flood').map((m) => m.b);
    for (const m of high) expect(got).toContain(m.body);
    await Promise.all([watcher, ...flooders].map((c) => c.close()));
  });

  it('puts system before gift before other kinds within one log entry', async () => {
    const watcher = await joinedClient(node, 'order-watch', 'prio-order');
    const res = await Promise.all([
      api(node, 'POST', '/v1/rooms/prio-order/messages', { kind: 'banner', body: 'b', priority: 'high' }),
      api(node, 'POST', '/v1/rooms/prio-order/messages', { kind: 'gift', body: 'g' }),
      api(node, 'POST', '/v1/rooms/prio-order/messages', { kind: 'system', body: 's' }),
    ]);
    const seqs = res.map((r) => r.body.seq as number);
    await watcher.waitFor((f) => f.op === 'batch' && (f.to as number) >= Math.max(...seqs));
    const kinds = delivered(watcher, 'prio-order').map((m) => m.k);
    // Only meaningful when the three landed in one entry (the usual case with one tick).
    if (new Set(seqs).size === 1) expect(kinds).toEqual(['system', 'gift', 'banner']);
    else expect(kinds.sort()).toEqual(['banner', 'gift', 'system']);
    await watcher.close();
  });
});

describe('POST /v1/broadcast', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode(BASE);
  });
  afterAll(() => node?.stop());

  it('answers 202 {rooms:0, failed:0} when no room has members', async () => {
    const res = await api(node, 'POST', '/v1/broadcast', { kind: 'system', body: 'nobody' });
    expect({ status: res.status, body: res.body }).toEqual({ status: 202, body: { rooms: 0, failed: 0 } });
  });

  it('reaches the members of every room that has members, and only those rooms', async () => {
    await postShown(node, 'bc-empty', { kind: 'system', body: 'before' });
    const emptyBefore = (await api(node, 'GET', '/v1/rooms/bc-empty')).body.seq as number;
    const a = await joinedClient(node, 'ua', 'bc-one');
    const b = await joinedClient(node, 'ub', 'bc-two');
    const b2 = await joinedClient(node, 'ub2', 'bc-two');
    const res = await api(node, 'POST', '/v1/broadcast', { kind: 'system', body: 'maintenance at 2', x: { at: 2 } });
    expect({ status: res.status, body: res.body }, res.text).toEqual({ status: 202, body: { rooms: 2, failed: 0 } });
    for (const [c, room] of [[a, 'bc-one'], [b, 'bc-two'], [b2, 'bc-two']] as const) {
      const { msg } = await waitMsg(c, room, (m) => m.b === 'maintenance at 2');
      expect(msg).toEqual({ u: 'system', k: 'system', b: 'maintenance at 2', t: expect.any(Number), x: { at: 2 } });
    }
    // A room without members got nothing appended.
    expect((await api(node, 'GET', '/v1/rooms/bc-empty')).body.seq).toBe(emptyBefore);
    await Promise.all([a.close(), b.close(), b2.close()]);
  });

  it('is never sampled out (priority high), even over a room budget', async () => {
    const nodeB = await startTestNode({ ...BASE, roomChatBudget: 1 });
    try {
      const c = await joinedClient(nodeB, 'u', 'bc-budget');
      for (let i = 0; i < 3; i++) {
        expect((await api(nodeB, 'POST', '/v1/broadcast', { kind: 'news', body: `n${i}` })).body).toEqual({ rooms: 1, failed: 0 });
      }
      await waitMsg(c, 'bc-budget', (m) => m.b === 'n2');
      expect(delivered(c, 'bc-budget').map((m) => m.b)).toEqual(['n0', 'n1', 'n2']);
    } finally {
      await nodeB.stop();
    }
  });
});
