// PROTOCOL §9: tokens expire on open connections (refresh, expiring, 4010) and the server API
// disconnects and bans users (bye, 4011, 403 BANNED). Real sockets against one node.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, connect, startTestNode } from './helpers.js';
import { api, expectError } from './api-helpers.js';
import { closeAll, craftJwt, metric, nowSec, refusedUpgrade, request, uniq } from './ws-helpers.js';

const SECRET = 'test-secret-for-sessions-0123456789abcdef';
const GRACE_SEC = 2;

const jwt = (payload: Record<string, unknown>, secret = SECRET) => craftJwt({ alg: 'HS256', typ: 'JWT' }, payload, secret);

describe('token expiry and refresh on open connections', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, secret: SECRET, apiKey: API_KEY, tokenGraceSec: GRACE_SEC });
  });
  afterAll(() => node.stop());

  it('exports the refresh and expiry counters at 0 before anything happened', async () => {
    for (const result of ['ok', 'bad_token', 'forbidden']) {
      const { body } = await fetch(`http://127.0.0.1:${node.port}/metrics`).then(async (r) => ({ body: await r.text() }));
      expect(body).toContain(`roomcast_token_refreshes_total{result="${result}"} `);
    }
    expect(await metric(node.port, 'roomcast_token_expiry_closes_total')).toBe(0);
  });

  it('refresh answers refreshed {exp} and the new expiry applies: the socket outlives the old exp', async () => {
    const uid = uniq('r');
    const oldExp = nowSec() + 2;
    const c = await connect(node.port, { token: jwt({ sub: uid, exp: oldExp }) });
    const before = await metric(node.port, 'roomcast_token_refreshes_total', { result: 'ok' });
    const newExp = nowSec() + 600;
    expect(await request(c, { op: 'refresh', token: jwt({ sub: uid, exp: newExp }) })).toMatchObject({ op: 'refreshed', exp: newExp });
    // Past the old exp and its grace, the connection is still open and may act.
    await new Promise((r) => setTimeout(r, (oldExp + GRACE_SEC) * 1000 - Date.now() + 500));
    expect(c.closeCode).toBeUndefined();
    expect(await request(c, { op: 'join', room: uniq('room') })).toMatchObject({ op: 'joined' });
    expect(await metric(node.port, 'roomcast_token_refreshes_total', { result: 'ok' })).toBe(before + 1);
    await closeAll(c);
  });

  it('an unrefreshed connection gets expiring, its ops get BAD_TOKEN after exp, and it is closed 4010 within the grace', async () => {
    const uid = uniq('x');
    const exp = nowSec() + 2;
    const room = uniq('room');
    const c = await connect(node.port, { token: jwt({ sub: uid, exp }), room });
    const closesBefore = await metric(node.port, 'roomcast_token_expiry_closes_total');
    const hint = await c.op('expiring', undefined, 4000);
    expect(hint.in).toBeGreaterThan(0);
    expect(hint.in).toBeLessThanOrEqual(2000);
    await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 50));
    // Expired but not yet closed: chat is refused rather than acked.
    expect(await request(c, { op: 'send', room, kind: 'chat', body: 'late' })).toMatchObject({ op: 'error', code: 'BAD_TOKEN' });
    expect(await c.closed).toBe(4010);
    const closedAt = Date.now();
    expect(closedAt).toBeGreaterThanOrEqual(exp * 1000);
    expect(closedAt).toBeLessThanOrEqual((exp + GRACE_SEC) * 1000 + 400); // slack for timers on a loaded machine
    expect(await metric(node.port, 'roomcast_token_expiry_closes_total')).toBe(closesBefore + 1);
  });

  it('a bad refresh token gets BAD_TOKEN, another sub gets FORBIDDEN, and the current token stays', async () => {
    const uid = uniq('b');
    const exp = nowSec() + 600;
    const c = await connect(node.port, { token: jwt({ sub: uid, exp }) });
    const bad = await metric(node.port, 'roomcast_token_refreshes_total', { result: 'bad_token' });
    const forbidden = await metric(node.port, 'roomcast_token_refreshes_total', { result: 'forbidden' });
    for (const t of ['garbage', jwt({ sub: uid, exp: nowSec() + 600 }, 'wrong-secret'), jwt({ sub: uid, exp: nowSec() - 10 }), jwt({ exp: nowSec() + 600 })]) {
      expect(await request(c, { op: 'refresh', token: t }), t).toMatchObject({ op: 'error', code: 'BAD_TOKEN' });
    }
    expect(await request(c, { op: 'refresh', token: jwt({ sub: uniq('other'), exp: nowSec() + 900 }) })).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    expect(await request(c, { op: 'refresh' })).toMatchObject({ op: 'error', code: 'BAD_FRAME' });
    expect(await metric(node.port, 'roomcast_token_refreshes_total', { result: 'bad_token' })).toBe(bad + 4);
    expect(await metric(node.port, 'roomcast_token_refreshes_total', { result: 'forbidden' })).toBe(forbidden + 1);
    // Still authorised as before.
    expect(await request(c, { op: 'join', room: uniq('room') })).toMatchObject({ op: 'joined' });
    expect(c.closeCode).toBeUndefined();
    await closeAll(c);
  });

  it('the new rooms claim applies: rooms it no longer allows are left; a lost moderator role stops moderation', async () => {
    const uid = uniq('m');
    const keep = uniq('keep');
    const drop = uniq('drop');
    const c = await connect(node.port, { token: jwt({ sub: uid, exp: nowSec() + 600, role: 'moderator', rooms: [keep, drop] }) });
    for (const room of [keep, drop]) expect(await request(c, { op: 'join', room })).toMatchObject({ op: 'joined' });
    expect(await request(c, { op: 'mute', room: keep, uid: 'someone', seconds: 1 })).toMatchObject({ op: 'ack' });
    const r = await request(c, { op: 'refresh', token: jwt({ sub: uid, exp: nowSec() + 600, rooms: [keep] }) });
    expect(r).toMatchObject({ op: 'refreshed' });
    expect(c.frames.find((f) => f.op === 'left' && f.room === drop)).toBeDefined();
    expect(c.frames.find((f) => f.op === 'left' && f.room === keep)).toBeUndefined();
    expect(await request(c, { op: 'send', room: drop, kind: 'chat', body: 'hi' })).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    expect(await request(c, { op: 'join', room: drop })).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    expect(await request(c, { op: 'send', room: keep, kind: 'chat', body: 'still here' })).toMatchObject({ op: 'ack' });
    expect(await request(c, { op: 'mute', room: keep, uid: 'someone', seconds: 1 })).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    await closeAll(c);
  });
});

describe('user disconnect and ban (one node)', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, secret: SECRET, apiKey: API_KEY, maxConnsPerUser: 3 });
  });
  afterAll(() => node.stop());

  it('closes every connection of the user with bye then 4011, and refuses its upgrades for `seconds`', async () => {
    const uid = uniq('d');
    const bystander = await connect(node.port, { token: jwt({ sub: uniq('other'), exp: nowSec() + 600 }) });
    const t = jwt({ sub: uid, exp: nowSec() + 600 });
    const socks = [await connect(node.port, { token: t }), await connect(node.port, { token: t, room: uniq('room') })];
    const res = await api(node, 'POST', `/v1/users/${uid}/disconnect`, { reason: 'account suspended', seconds: 2 });
    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { ok: true } });
    for (const c of socks) {
      expect(await c.closed).toBe(4011);
      const bye = c.frames.find((f) => f.op === 'bye');
      expect(bye).toMatchObject({ reason: 'account suspended' });
    }
    expect(bystander.closeCode).toBeUndefined();
    const refused = await refusedUpgrade(node.port, { token: t });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body)).toEqual({ error: { code: 'BANNED', message: expect.any(String) } });
    await new Promise((r) => setTimeout(r, 2100));
    const again = await connect(node.port, { token: t });
    expect(again.frames[0]).toMatchObject({ op: 'welcome', uid });
    await closeAll(again, bystander);
  });

  it('without seconds the user may reconnect at once; bad requests get 400/401', async () => {
    const uid = uniq('d0');
    const t = jwt({ sub: uid, exp: nowSec() + 600 });
    const c = await connect(node.port, { token: t });
    expect((await api(node, 'POST', `/v1/users/${uid}/disconnect`)).status).toBe(200);
    expect(await c.closed).toBe(4011);
    expect(c.frames.find((f) => f.op === 'bye')).toMatchObject({ op: 'bye', reason: expect.any(String) });
    const again = await connect(node.port, { token: t });
    await closeAll(again);
    expectError(await api(node, 'POST', `/v1/users/${uid}/disconnect`, { seconds: -1 }), 400, 'BAD_REQUEST');
    expectError(await api(node, 'POST', `/v1/users/${uid}/disconnect`, { nope: 1 }), 400, 'BAD_REQUEST');
    expectError(await api(node, 'POST', `/v1/users/${'u'.repeat(65)}/disconnect`, {}), 400, 'BAD_REQUEST');
    expectError(await api(node, 'POST', `/v1/users/${uid}/disconnect`, {}, { key: 'wrong' }), 401, 'UNAUTHORIZED');
  });

  it('caps a user at maxConnsPerUser sockets: the next upgrade gets 429', async () => {
    const t = jwt({ sub: uniq('cap'), exp: nowSec() + 600 });
    const socks = [];
    for (let i = 0; i < 3; i++) socks.push(await connect(node.port, { token: t }));
    const over = await refusedUpgrade(node.port, { token: t });
    expect(over.status).toBe(429);
    expect(JSON.parse(over.body)).toMatchObject({ error: { code: 'RATE_LIMITED' } });
    await closeAll(socks[0]);
    await new Promise((r) => setTimeout(r, 50));
    socks.push(await connect(node.port, { token: t })); // a slot is free again
    await closeAll(...socks);
  });
});
