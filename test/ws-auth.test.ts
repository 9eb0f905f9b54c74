// PROTOCOL §1/§2: tokens are checked during the upgrade (401, no socket); rooms claims; guests.
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { connect, startTestNode, token, upgradeStatus } from './helpers.js';
import { closeAll, craftJwt, member, metric, nowSec, refusedUpgrade, request, uniq, user } from './ws-helpers.js';

const SECRET = 'test-secret-for-auth-0123456789abcdef01';

describe('tokens', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, secret: SECRET });
  });
  afterAll(() => node.stop());

  const valid = (over: Record<string, unknown> = {}) => ({ sub: uniq('u'), exp: nowSec() + 600, ...over });
  const hs256 = (payload: Record<string, unknown>) => craftJwt({ alg: 'HS256', typ: 'JWT' }, payload, SECRET);

  it('a valid HS256 token opens a socket as its sub (name and role optional)', async () => {
    const uid = uniq('ok');
    for (const t of [
      hs256(valid({ sub: uid })),
      hs256(valid({ sub: uid, name: 'n'.repeat(32), role: 'moderator', rooms: ['a', 'b*'] })),
      hs256(valid({ sub: uid, role: 'viewer' })),
    ]) {
      const c = await connect(node.port, { token: t });
      expect(c.frames[0]).toMatchObject({ op: 'welcome', uid });
      await closeAll(c);
    }
    const longSub = 's'.repeat(64);
    const c = await connect(node.port, { token: hs256(valid({ sub: longSub })) });
    expect(c.frames[0]).toMatchObject({ op: 'welcome', uid: longSub });
    await closeAll(c);
  });

  const refused: Array<[string, () => Promise<string | undefined>]> = [
    ['missing token (guests off)', async () => undefined],
    ['empty token', async () => ''],
    ['garbage string', async () => 'this-is-not-a-jwt'],
    ['three garbage segments', async () => 'a.b.c'],
    ['expired', async () => hs256(valid({ exp: nowSec() - 60 }))],
    ['wrong key', async () => craftJwt({ alg: 'HS256', typ: 'JWT' }, valid(), 'another-secret')],
    ['alg none, no signature', async () => craftJwt({ alg: 'none', typ: 'JWT' }, valid(), undefined)],
    ['alg none with an HS256 signature', async () => hs256(valid()).replace(/^[^.]+/, Buffer.from('{"alg":"none"}').toString('base64url'))],
    ['HS512 with the right secret', async () => craftJwt({ alg: 'HS512', typ: 'JWT' }, valid(), SECRET, 'sha512')],
    ['HS384 with the right secret', async () => craftJwt({ alg: 'HS384', typ: 'JWT' }, valid(), SECRET, 'sha384')],
    [
      'HS512 minted by jose',
      async () =>
        new SignJWT({}).setProtectedHeader({ alg: 'HS512' }).setSubject(uniq('u')).setExpirationTime(nowSec() + 600).sign(new TextEncoder().encode(SECRET)),
    ],
    ['tampered payload', async () => {
      const [h, , s] = hs256(valid({ role: 'viewer' })).split('.');
      return `${h}.${Buffer.from(JSON.stringify(valid({ role: 'moderator' }))).toString('base64url')}.${s}`;
    }],
    ['no sub', async () => hs256({ exp: nowSec() + 600 })],
    ['empty sub', async () => hs256(valid({ sub: '' }))],
    ['sub of 65 chars', async () => hs256(valid({ sub: 's'.repeat(65) }))],
    ['sub that is not a string', async () => hs256(valid({ sub: 42 }))],
    ['no exp', async () => hs256({ sub: uniq('u') })],
    ['exp not a number', async () => hs256(valid({ exp: 'tomorrow' }))],
    ['name of 33 chars', async () => hs256(valid({ name: 'n'.repeat(33) }))],
    ['name not a string', async () => hs256(valid({ name: 7 }))],
    ['role admin', async () => hs256(valid({ role: 'admin' }))],
    ['rooms not a list', async () => hs256(valid({ rooms: 'lobby' }))],
  ];

  for (const [what, make] of refused) {
    it(`401 before any socket: ${what}`, async () => {
      const t = await make();
      const res = await refusedUpgrade(node.port, t === undefined ? {} : { token: t });
      expect(res.status).toBe(401);
    });
  }

  it('refused upgrades never open a connection and are counted by reason', async () => {
    const before = await metric(node.port, 'roomcast_auth_failures_total', { reason: 'expired' });
    expect(await upgradeStatus(node.port, { token: hs256(valid({ exp: nowSec() - 5 })) })).toBe(401);
    expect(await metric(node.port, 'roomcast_auth_failures_total', { reason: 'expired' })).toBe(before + 1);
    expect(await metric(node.port, 'roomcast_connections')).toBe(0);
  });

  it('rooms claim: exact ids and * prefixes may be joined, others are FORBIDDEN', async () => {
    const uid = uniq('scoped');
    const c = await user(node, uid, { rooms: ['vip-*', 'lobby'] });
    expect(await request(c, { op: 'join', room: 'vip-1' })).toMatchObject({ op: 'joined', room: 'vip-1' });
    expect(await request(c, { op: 'join', room: 'vip-' })).toMatchObject({ op: 'joined', room: 'vip-' });
    expect(await request(c, { op: 'join', room: 'lobby' })).toMatchObject({ op: 'joined', room: 'lobby' });
    const ref = 4242;
    c.send({ op: 'join', room: 'lobby2', ref });
    expect(await c.reply(ref)).toMatchObject({ op: 'error', code: 'FORBIDDEN', ref });
    expect(await request(c, { op: 'join', room: 'vip' })).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    expect(await request(c, { op: 'join', room: 'other' })).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    // The same through the query string: the socket opens, the join is refused.
    const q = await user(node, uid, { rooms: ['vip-*'], room: 'other' });
    expect(await q.op('error')).toMatchObject({ code: 'FORBIDDEN' });
    expect(q.frames.some((f) => f.op === 'joined')).toBe(false);
    await closeAll(c, q);
  });
});

describe('guests', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, secret: SECRET, allowGuests: true, guestRooms: ['*'] });
  });
  afterAll(() => node.stop());

  it('no token: a read-only guest:<sid> that may join and receive, whose send gets FORBIDDEN', async () => {
    const room = uniq('guestroom');
    const g = await connect(node.port, {});
    const w = g.frames[0]!;
    expect(w.op).toBe('welcome');
    expect(w.uid).toBe(`guest:${w.sid as string}`);
    expect(await request(g, { op: 'join', room })).toMatchObject({ op: 'joined', room });
    const t = await token(node, { uid: uniq('speaker') });
    const s = await connect(node.port, { token: t, room });
    expect(await request(s, { op: 'send', room, kind: 'chat', body: 'hello guests' })).toMatchObject({ shown: true });
    expect((await g.op('batch')).msgs).toEqual([expect.objectContaining({ b: 'hello guests' })]);
    const ref = 777;
    g.send({ op: 'send', room, kind: 'chat', body: 'can I talk?', ref });
    expect(await g.reply(ref)).toMatchObject({ op: 'error', code: 'FORBIDDEN', ref });
    expect(await request(g, { op: 'send', room, kind: 'like' })).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    await closeAll(g, s);
  });

  it('guests get distinct uids; a guest joins from the query string too', async () => {
    const room = uniq('guestq');
    const a = await connect(node.port, { room });
    const b = await connect(node.port, {});
    expect(a.frames[0]!.uid).not.toBe(b.frames[0]!.uid);
    expect(a.frames[1]).toMatchObject({ op: 'joined', room });
    await closeAll(a, b);
  });

  it('a bad token is still 401 when guests are allowed', async () => {
    expect(await upgradeStatus(node.port, { token: 'garbage' })).toBe(401);
    expect(await upgradeStatus(node.port, { token: craftJwt({ alg: 'HS256' }, { sub: 'x', exp: nowSec() - 10 }, SECRET) })).toBe(401);
  });

  it('a valid token on a guest-enabled node is a normal user who can send', async () => {
    const room = uniq('guestmix');
    const { c } = await member(node, uniq('real'), room);
    expect(await request(c, { op: 'send', room, kind: 'chat', body: 'hi' })).toMatchObject({ op: 'ack', shown: true });
    await closeAll(c);
  });
});
