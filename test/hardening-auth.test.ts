// Hardening: who gets in where. Token edge cases at the upgrade (alg none, algorithm confusion,
// expired, not yet valid, crit headers, embedded keys), the rooms claim's prefixes and attempts
// to escape them, moderator ops by viewers and guests, the API key (every wrong length and
// near miss → 401; the comparison hashes both sides), no /v1 route without the key whatever the
// method or path spelling, and no /dev routes once a secret is set.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyCheck } from '../src/api/auth.js';
import type { RoomcastNode } from '../src/node.js';
import { startTestNode, token, wsUrl } from './helpers.js';
import { craftJwt, FuzzClient, metricsText, metricValue, mp, nowSec, rawHttp, Rng, sleep, upgradeAttempt, type Frame } from './fuzz-helpers.js';

const SECRET = 'hardening-auth-secret-0123456789abcdef';
const API_KEY = 'Zx9-hardening-api-key-0123456789';

let refs = 1;
async function request(c: FuzzClient, op: Record<string, unknown>): Promise<Frame> {
  const ref = refs++;
  c.send(mp({ ...op, ref }));
  await c.until(() => c.frames.some((f) => f.ref === ref));
  return c.frames.find((f) => f.ref === ref)!;
}

async function open(node: RoomcastNode, claims: { uid: string; rooms?: string[]; role?: 'viewer' | 'moderator' }, q: { room?: string; since?: number; epoch?: string } = {}): Promise<FuzzClient> {
  const t = await token(node, claims);
  return FuzzClient.open(wsUrl(node.port, { token: t, ...q }));
}

describe('tokens at the upgrade', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, secret: SECRET, connectRate: 0 });
  });
  afterAll(() => node?.stop());

  const claims = (over: Record<string, unknown> = {}) => ({ sub: `tok-${Math.random().toString(36).slice(2)}`, exp: nowSec() + 600, ...over });
  const hs = (payload: unknown, header: Record<string, unknown> = {}) => craftJwt({ alg: 'HS256', typ: 'JWT', ...header }, payload, SECRET);
  const swapPayload = (t: string, payload: unknown) => {
    const [h, , s] = t.split('.');
    return `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
  };

  // [what, token (undefined = none), the auth_failures_total reason it must be counted under]
  const refused: Array<[string, () => string | undefined, string]> = [
    ['no token', () => undefined, 'missing'],
    ['alg none, no signature', () => craftJwt({ alg: 'none' }, claims(), undefined), 'malformed'],
    ['alg None', () => craftJwt({ alg: 'None' }, claims(), undefined), 'malformed'],
    ['alg NONE with an HS256 signature attached', () => `${hs(claims()).replace(/^[^.]+/, Buffer.from('{"alg":"NONE"}').toString('base64url'))}`, 'malformed'],
    ['alg RS256 header, HMAC-signed with the secret (algorithm confusion)', () => craftJwt({ alg: 'RS256' }, claims(), SECRET), 'malformed'],
    ['alg ES256 header', () => craftJwt({ alg: 'ES256' }, claims(), SECRET), 'malformed'],
    ['alg HS512 with the right secret', () => craftJwt({ alg: 'HS512' }, claims(), SECRET, 'sha512'), 'malformed'],
    ['alg hs256 (wrong case)', () => craftJwt({ alg: 'hs256' }, claims(), SECRET), 'malformed'],
    ['no alg', () => craftJwt({ typ: 'JWT' }, claims(), SECRET), 'malformed'],
    ['crit header naming an unknown extension', () => hs(claims(), { crit: ['x-roomcast'], 'x-roomcast': 1 }), 'malformed'],
    ['b64:false (unencoded payload)', () => hs(claims(), { b64: false, crit: ['b64'] }), 'malformed'],
    ['a jwk header carrying the attacker’s own key', () => craftJwt({ alg: 'HS256', jwk: { kty: 'oct', k: Buffer.from('evil').toString('base64url') } }, claims(), 'evil'), 'signature'],
    ['signed with another secret', () => craftJwt({ alg: 'HS256' }, claims(), 'not-the-secret'), 'signature'],
    ['signed with an empty secret', () => craftJwt({ alg: 'HS256' }, claims(), ''), 'signature'],
    ['viewer token with the payload swapped for role moderator', () => swapPayload(hs(claims()), claims({ role: 'moderator' })), 'signature'],
    ['payload swapped to widen the rooms claim', () => swapPayload(hs(claims({ rooms: ['a'] })), claims({ rooms: ['*'] })), 'signature'],
    ['expired an hour ago', () => hs(claims({ exp: nowSec() - 3600 })), 'expired'],
    ['expired a second ago', () => hs(claims({ exp: nowSec() - 1 })), 'expired'],
    ['expiring this very second (exp = now)', () => hs(claims({ exp: nowSec() })), 'expired'],
    ['not yet valid (nbf in a minute)', () => hs(claims({ nbf: nowSec() + 60 })), 'claims'],
    ['nbf that is not a number', () => hs(claims({ nbf: 'soon' })), 'claims'],
    ['exp that is not a number', () => hs(claims({ exp: String(nowSec() + 600) })), 'claims'],
    ['no exp', () => hs({ sub: 'x' }), 'claims'],
    ['no sub', () => hs({ exp: nowSec() + 600 }), 'claims'],
    ['sub impersonating a guest', () => hs(claims({ sub: 'guest:abc' })), 'claims'],
    ['role admin', () => hs(claims({ role: 'admin' })), 'claims'],
    ['role Moderator (case)', () => hs(claims({ role: 'Moderator' })), 'claims'],
    ['rooms with an empty entry', () => hs(claims({ rooms: [''] })), 'claims'],
    ['rooms not a list', () => hs(claims({ rooms: '*' })), 'claims'],
    ['a JSON array as payload', () => hs([1, 2]), 'malformed'],
    ['five segments (JWE shape)', () => 'a.b.c.d.e', 'malformed'],
    ['two segments', () => hs(claims()).split('.').slice(0, 2).join('.'), 'malformed'],
    ['8 KB of base64', () => 'A'.repeat(8192), 'malformed'],
    ['the API key as a token', () => API_KEY, 'malformed'],
  ];

  it('every refused token gets 401 before any socket, counted under its reason', async () => {
    const before = await metricsText(node.port);
    const expected = new Map<string, number>();
    const failures: string[] = [];
    for (const [what, make, reason] of refused) {
      const t = make();
      const res = await upgradeAttempt(node.port, t === undefined ? '' : `token=${encodeURIComponent(t)}`);
      if (res.status !== 401) failures.push(`${what}: ${res.status}`);
      else if (JSON.parse(res.body).error?.code !== 'UNAUTHORIZED') failures.push(`${what}: body ${res.body}`);
      expected.set(reason, (expected.get(reason) ?? 0) + 1);
    }
    expect(failures).toEqual([]);
    const after = await metricsText(node.port);
    for (const reason of ['missing', 'malformed', 'signature', 'expired', 'claims']) {
      const delta = metricValue(after, 'roomcast_auth_failures_total', { reason }) - metricValue(before, 'roomcast_auth_failures_total', { reason });
      expect(delta, reason).toBe(expected.get(reason) ?? 0);
    }
    expect(metricValue(after, 'roomcast_connections')).toBe(0);
  });

  it('the first token in the query counts: a valid one after a bad one does not get in', async () => {
    const good = hs(claims());
    expect((await upgradeAttempt(node.port, `token=garbage&token=${good}`)).status).toBe(401);
    expect((await upgradeAttempt(node.port, `token=${good}&token=garbage`)).status).toBe(101);
  });

  it('key-locating headers are ignored: kid, jku and x5u never fetch or pick a key', async () => {
    const t = hs(claims({ sub: 'kid-user' }), { kid: '../../../../etc/passwd', jku: 'http://127.0.0.1:1/jwks.json', x5u: 'http://127.0.0.1:1/x5u' });
    const c = await FuzzClient.open(wsUrl(node.port, { token: t }));
    expect(c.frames[0]).toMatchObject({ op: 'welcome', uid: 'kid-user' });
    c.close();
    const forged = craftJwt({ alg: 'HS256', kid: 'other', jku: 'http://127.0.0.1:1/jwks.json' }, claims(), 'attacker-secret');
    expect((await upgradeAttempt(node.port, `token=${forged}`)).status).toBe(401);
  });

  it('nbf in the past is fine', async () => {
    expect((await upgradeAttempt(node.port, `token=${hs(claims({ nbf: nowSec() - 60 }))}`)).status).toBe(101);
  });
});

describe('the rooms claim', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, secret: SECRET, connectRate: 0, joinRate: 1000, joinBurst: 1000, chatRate: 100, chatBurst: 100 });
  });
  afterAll(() => node?.stop());

  const cases: Array<[string[], Array<[string, string]>]> = [
    [
      ['vip-*'],
      [
        ['vip-', 'joined'],
        ['vip-1', 'joined'],
        ['vip-a.b:c', 'joined'],
        ['vip', 'FORBIDDEN'],
        ['VIP-1', 'FORBIDDEN'],
        ['xvip-1', 'FORBIDDEN'],
        [' vip-1', 'BAD_ROOM'],
        ['vip-*', 'BAD_ROOM'],
        ['vip-1*', 'BAD_ROOM'],
        ['vip-/../admin', 'BAD_ROOM'],
        ['vip-\u0000', 'BAD_ROOM'],
        ['vip-1\n', 'BAD_ROOM'],
        ['vi\u0440-1', 'BAD_ROOM'], // Cyrillic "р"
        ['vip-' + 'x'.repeat(60), 'joined'],
        ['vip-' + 'x'.repeat(61), 'BAD_ROOM'],
      ],
    ],
    [['lobby'], [['lobby', 'joined'], ['lobby2', 'FORBIDDEN'], ['lobb', 'FORBIDDEN'], ['Lobby', 'FORBIDDEN'], ['lobby.', 'FORBIDDEN']]],
    [['team:*', 'solo'], [['team:1', 'joined'], ['team:', 'joined'], ['team', 'FORBIDDEN'], ['team.1', 'FORBIDDEN'], ['solo', 'joined'], ['solo:1', 'FORBIDDEN']]],
    [['*'], [['anything', 'joined'], ['x', 'joined']]],
    [[], [['anything', 'FORBIDDEN'], ['x', 'FORBIDDEN']]],
    [['v*p'], [['vip', 'FORBIDDEN'], ['v', 'FORBIDDEN']]], // '*' only counts at the end
  ];

  for (const [rooms, expectations] of cases) {
    it(`rooms ${JSON.stringify(rooms)}: join and query join land where the claim says`, async () => {
      const c = await open(node, { uid: `claim-${rooms.join('_') || 'none'}`, rooms });
      for (const [room, want] of expectations) {
        const r = await request(c, { op: 'join', room });
        expect(r.op === 'joined' ? 'joined' : r.code, `join ${JSON.stringify(room)}`).toBe(want);
      }
      c.close();
      // The same through the upgrade's query string (percent-decoded by the server).
      for (const [room, want] of expectations.slice(0, 4)) {
        const q = await open(node, { uid: 'claim-q', rooms }, { room });
        await q.until(() => q.frames.some((f) => f.op === 'joined' || f.op === 'error'));
        const r = q.frames.find((f) => f.op === 'joined' || f.op === 'error')!;
        expect(r.op === 'joined' ? 'joined' : r.code, `query room ${JSON.stringify(room)}`).toBe(want);
        q.close();
      }
    });
  }

  it('recovery does not leak a forbidden room: join with since gets FORBIDDEN and no batch', async () => {
    const room = 'secret-room';
    const owner = await open(node, { uid: 'owner' }, { room });
    await owner.until(() => owner.frames.some((f) => f.op === 'joined'));
    for (let i = 0; i < 3; i++) await request(owner, { op: 'send', room, kind: 'chat', body: `secret ${i}` });
    const joined = owner.frames.find((f) => f.op === 'joined')!;
    const spy = await open(node, { uid: 'spy', rooms: ['vip-*'] });
    expect(await request(spy, { op: 'join', room, since: 0, epoch: joined.epoch })).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    const spyQ = await open(node, { uid: 'spy', rooms: ['vip-*'] }, { room, since: 0, epoch: joined.epoch as string });
    await spyQ.until(() => spyQ.frames.some((f) => f.op === 'error'));
    // Not a member, so it cannot write there or leave either.
    expect(await request(spy, { op: 'send', room, kind: 'chat', body: 'hi' })).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    expect(await request(spy, { op: 'send', room, kind: 'like' })).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    expect(await request(spy, { op: 'leave', room })).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    await sleep(100);
    expect([...spy.frames, ...spyQ.frames].filter((f) => f.op === 'batch' || f.op === 'joined' || f.op === 'members')).toEqual([]);
    for (const c of [owner, spy, spyQ]) c.close();
  });
});

describe('moderator ops', () => {
  let node: RoomcastNode;
  let guests: RoomcastNode;
  beforeAll(async () => {
    [node, guests] = await Promise.all([
      startTestNode({ tickMs: 20, secret: SECRET, connectRate: 0, joinRate: 1000, joinBurst: 1000, chatRate: 100, chatBurst: 100 }),
      startTestNode({ tickMs: 20, secret: SECRET, connectRate: 0, allowGuests: true, guestRooms: ['*'] }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([node?.stop(), guests?.stop()]);
  });

  const ops = (room: string, uid: string): Array<Record<string, unknown>> => [
    { op: 'kick', room, uid },
    { op: 'kick', room, uid, seconds: 3600, reason: 'bye' },
    { op: 'mute', room, uid },
    { op: 'mute', room, uid, seconds: 60 },
    { op: 'mute', room }, // the whole room
    { op: 'mute', room, seconds: 0 }, // unmute the room
  ];

  it('viewers get FORBIDDEN for every kick and mute form, and nothing happens to anyone', async () => {
    const room = 'mod-room';
    const viewer = await open(node, { uid: 'plain-viewer' }, { room });
    const victim = await open(node, { uid: 'mod-victim' }, { room });
    await victim.until(() => victim.frames.some((f) => f.op === 'joined'));
    for (const op of ops(room, 'mod-victim')) expect(await request(viewer, op), JSON.stringify(op)).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    expect(await request(victim, { op: 'send', room, kind: 'chat', body: 'still free' })).toMatchObject({ op: 'ack', shown: true });
    expect(victim.frames.filter((f) => f.op === 'kicked' || f.op === 'muted')).toEqual([]);
    for (const c of [viewer, victim]) c.close();
  });

  it('guests get FORBIDDEN too', async () => {
    const room = 'guest-mod-room';
    const g = await FuzzClient.open(wsUrl(guests.port, { room }));
    await g.until(() => g.frames.some((f) => f.op === 'joined'));
    for (const op of ops(room, 'anyone')) expect(await request(g, op), JSON.stringify(op)).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    g.close();
  });

  it('a moderator acts only in rooms it joined, and its rooms claim bounds those', async () => {
    const mod = await open(node, { uid: 'scoped-mod', role: 'moderator', rooms: ['stage-*'] });
    const victim = await open(node, { uid: 'mod-victim-2' });
    await request(victim, { op: 'join', room: 'other-room' });
    await request(victim, { op: 'join', room: 'stage-1' });
    for (const op of ops('other-room', 'mod-victim-2')) expect(await request(mod, op), JSON.stringify(op)).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    expect(await request(mod, { op: 'join', room: 'other-room' })).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    expect(await request(mod, { op: 'kick', room: 'other-room', uid: 'mod-victim-2' })).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    // In its own room the kick works — and only there.
    expect(await request(mod, { op: 'join', room: 'stage-1' })).toMatchObject({ op: 'joined' });
    expect(await request(mod, { op: 'kick', room: 'stage-1', uid: 'mod-victim-2' })).toMatchObject({ op: 'ack', shown: true });
    await victim.until(() => victim.frames.some((f) => f.op === 'kicked' && f.room === 'stage-1'));
    expect(await request(victim, { op: 'send', room: 'other-room', kind: 'chat', body: 'still here' })).toMatchObject({ op: 'ack' });
    expect(await request(victim, { op: 'join', room: 'stage-1' })).toMatchObject({ op: 'error', code: 'KICKED' });
    for (const c of [mod, victim]) c.close();
  });
});

describe('the API key', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, secret: SECRET, apiKey: API_KEY });
  });
  afterAll(() => node?.stop());

  const get = (authorization?: string) =>
    fetch(`http://127.0.0.1:${node.port}/v1/rooms`, { headers: authorization === undefined ? {} : { authorization } }).then(async (r) => ({ status: r.status, body: await r.text() }));

  it('createKeyCheck: only the exact key after a Bearer scheme passes; no key configured passes nothing', () => {
    const check = createKeyCheck('k3y');
    expect(check('Bearer k3y')).toBe(true);
    expect(check('bearer k3y')).toBe(true); // the scheme is case-insensitive (RFC 9110)
    for (const bad of [undefined, '', 'k3y', 'Bearer', 'Bearer ', 'Bearer k3', 'Bearer k3yy', 'Bearer K3Y', 'Basic k3y', 'Bearerk3y', 'Bearer k3y\u0000', 'Bearer\tk3y']) {
      expect(check(bad), JSON.stringify(bad)).toBe(false);
    }
    // Passed headers are remembered: the same header passes again, near misses still fail.
    expect(check('Bearer k3y')).toBe(true);
    for (const bad of ['Bearer k3', 'Bearer k3yy', 'Bearer K3Y', 'Bearer k3y ']) expect(check(bad), JSON.stringify(bad)).toBe(false);
    const none = createKeyCheck(null);
    for (const any of [undefined, '', 'Bearer ', 'Bearer null', 'Bearer dev', 'Bearer \u0000no key configured']) expect(none(any), JSON.stringify(any)).toBe(false);
  });

  it('wrong keys of every length 0–100, and every one-character near miss, get 401', async () => {
    const rng = new Rng(7);
    const keys: string[] = [];
    for (let len = 0; len <= 100; len++) keys.push(Array.from({ length: len }, () => String.fromCharCode(33 + rng.int(94))).join(''));
    for (let i = 0; i < API_KEY.length; i++) {
      keys.push(API_KEY.slice(0, i)); // every prefix
      keys.push(API_KEY.slice(0, i) + String.fromCharCode(API_KEY.charCodeAt(i) ^ 1) + API_KEY.slice(i + 1)); // one char off
    }
    keys.push(API_KEY + 'x', 'x' + API_KEY, API_KEY.toUpperCase(), API_KEY + API_KEY);
    const failures: string[] = [];
    for (const k of keys) {
      if (k === API_KEY) continue;
      const res = await get(`Bearer ${k}`);
      if (res.status !== 401) failures.push(`${JSON.stringify(k)}: ${res.status}`);
    }
    expect(failures).toEqual([]);
    expect((await get(`Bearer ${API_KEY}`)).status).toBe(200);
  });

  it('no /v1 route answers without the key, whatever the method or the spelling of the path', async () => {
    const paths = [
      '/v1/rooms/r/messages', '/v1/broadcast', '/v1/rooms/r', '/v1/rooms', '/v1/rooms?top=5', '/v1/rooms/r/kick', '/v1/rooms/r/mute',
      '/v1/rooms/', '/v1/rooms/r/', '/v1//rooms', '/v1/rooms//messages', '/v1/rooms/r/messages/', '/V1/rooms', '/v1/Rooms',
      '/%76%31/rooms', '/v1/rooms/%2e%2e/broadcast', '/v1/rooms/r%2Fmessages', '/./v1/rooms', '/v1/./rooms', '/x/../v1/rooms',
      '/v1/rooms?top=5&key=' + API_KEY, '/v1/rooms?api_key=' + API_KEY, '/v1/rooms;a=b', '/v1/rooms%00', '/v1/rooms/r/messages?x=1',
    ];
    const failures: string[] = [];
    for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
      for (const path of paths) {
        for (const auth of ['', 'Authorization: Bearer wrong\r\n', `Authorization: Basic ${Buffer.from(`x:${API_KEY}`).toString('base64')}\r\n`, `X-Api-Key: ${API_KEY}\r\n`]) {
          const body = method === 'GET' || method === 'OPTIONS' ? '' : '{"kind":"system","body":"x","uid":"u","seconds":1}';
          const res = await rawHttp(
            node.port,
            `${method} ${path} HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
            { timeoutMs: 3000 },
          );
          if (res.status !== 401 && res.status !== 404) failures.push(`${method} ${path} [${auth.trim()}]: ${res.status}`);
          else if (JSON.parse(res.body || '{}').error?.code !== (res.status === 401 ? 'UNAUTHORIZED' : 'NOT_FOUND')) failures.push(`${method} ${path}: body ${res.body}`);
        }
      }
    }
    expect(failures).toEqual([]);
    // Nothing was posted, kicked or muted by any of it.
    const info = await fetch(`http://127.0.0.1:${node.port}/v1/rooms/r`, { headers: { authorization: `Bearer ${API_KEY}` } });
    expect(info.status).toBe(404);
  }, 60_000);
});

describe('dev endpoints', () => {
  let prod: RoomcastNode;
  let dev: RoomcastNode;
  beforeAll(async () => {
    [prod, dev] = await Promise.all([startTestNode({ tickMs: 20, secret: SECRET, apiKey: API_KEY }), startTestNode({ tickMs: 20 })]);
  });
  afterAll(async () => {
    await Promise.all([prod?.stop(), dev?.stop()]);
  });

  const devPaths = ['/dev/token?uid=x', '/dev/token?uid=x&role=moderator', '/dev/token', '/dev/', '/dev', '/', '/index.html', '/vendor/msgpack.min.js'];

  it('do not exist when a secret is set', async () => {
    for (const path of devPaths) {
      const res = await fetch(`http://127.0.0.1:${prod.port}${path}`);
      expect(res.status, path).toBe(404);
      expect(await res.json(), path).toMatchObject({ error: { code: 'NOT_FOUND' } });
    }
  });

  it('exist in dev mode, and their tokens are worthless anywhere else', async () => {
    const res = await fetch(`http://127.0.0.1:${dev.port}/dev/token?uid=devuser&role=moderator`);
    expect(res.status).toBe(200);
    const { token: devToken } = (await res.json()) as { token: string };
    expect((await upgradeAttempt(dev.port, `token=${devToken}`)).status).toBe(101);
    expect((await upgradeAttempt(prod.port, `token=${devToken}`)).status).toBe(401);
    // The dev API key "dev" is not a key on the production node.
    const api = await fetch(`http://127.0.0.1:${prod.port}/v1/rooms`, { headers: { authorization: 'Bearer dev' } });
    expect(api.status).toBe(401);
  });
});
