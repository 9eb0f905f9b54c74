// Kicks and mutes through the server API (POST /v1/rooms/:room/kick|mute) and through the
// moderator WebSocket ops, which share one code path (PROTOCOL §3, §6; docs/protocol.md §8).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, joinedClient, sleep, startTestNode, SECRET, type Client } from './helpers.js';
import { api, chat, delivered, postShown, request, waitMsg } from './api-helpers.js';

const BASE = { apiKey: API_KEY, secret: SECRET, tickMs: 20, chatRate: 50, chatBurst: 50 } as const;

const kick = (node: RoomcastNode, room: string, body: Record<string, unknown>) => api(node, 'POST', `/v1/rooms/${room}/kick`, body);
const mute = (node: RoomcastNode, room: string, body: Record<string, unknown>) => api(node, 'POST', `/v1/rooms/${room}/mute`, body);

describe('kick through the API', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ ...BASE, kickSeconds: 60 });
  });
  afterAll(() => node?.stop());

  it('sends kicked {room, reason}, takes the user out of the room and refuses a rejoin with KICKED', async () => {
    const victim = await joinedClient(node, 'victim', 'k-room');
    const other = await joinedClient(node, 'bystander', 'k-room');
    const res = await kick(node, 'k-room', { uid: 'victim', reason: 'spam' });
    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { ok: true } });
    expect(await victim.op('kicked')).toEqual({ op: 'kicked', room: 'k-room', reason: 'spam' });

    // Out of the room: chat is NOT_JOINED, room messages no longer arrive.
    expect(await chat(victim, 'k-room', 'still here?')).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    await postShown(node, 'k-room', { kind: 'system', body: 'after the kick' });
    await waitMsg(other, 'k-room', (m) => m.b === 'after the kick');
    expect(delivered(victim, 'k-room').map((m) => m.b)).not.toContain('after the kick');
    expect(other.frames.some((f) => f.op === 'kicked')).toBe(false);
    expect((await api(node, 'GET', '/v1/rooms/k-room')).body.members).toBe(1);

    // Rejoining is refused for kickSeconds, on this connection and on a new one.
    const again = await request(victim, { op: 'join', room: 'k-room' });
    expect(again).toMatchObject({ op: 'error', code: 'KICKED' });
    expect(again.retryMs as number).toBeGreaterThan(55_000);
    expect(again.retryMs as number).toBeLessThanOrEqual(60_000);
    const fresh = await joinedClient(node, 'victim', 'k-room');
    expect(fresh.frames.find((f) => f.op === 'joined' || f.op === 'error')).toMatchObject({ op: 'error', code: 'KICKED' });
    // Other rooms are not affected.
    expect(await request(victim, { op: 'join', room: 'k-other' })).toMatchObject({ op: 'joined', room: 'k-other' });
    await Promise.all([victim.close(), other.close(), fresh.close()]);
  });

  it('sends kicked without reason when none is given, to every connection of the user', async () => {
    const c1 = await joinedClient(node, 'multi', 'k-multi');
    const c2 = await joinedClient(node, 'multi', 'k-multi');
    expect((await kick(node, 'k-multi', { uid: 'multi' })).status).toBe(200);
    expect(await c1.op('kicked')).toEqual({ op: 'kicked', room: 'k-multi' });
    expect(await c2.op('kicked')).toEqual({ op: 'kicked', room: 'k-multi' });
    await Promise.all([c1.close(), c2.close()]);
  });

  it('bans for `seconds`: a rejoin is refused, then allowed once the ban expired', async () => {
    const victim = await joinedClient(node, 'brief', 'k-timed');
    expect((await kick(node, 'k-timed', { uid: 'brief', seconds: 1 })).body).toEqual({ ok: true });
    await victim.op('kicked');
    const refused = await request(victim, { op: 'join', room: 'k-timed' });
    expect(refused).toMatchObject({ op: 'error', code: 'KICKED' });
    const left = refused.retryMs as number;
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(1000);
    await sleep(left + 200);
    expect(await request(victim, { op: 'join', room: 'k-timed' })).toMatchObject({ op: 'joined', room: 'k-timed' });
    await victim.close();
  });

  it('with seconds 0 kicks without a ban', async () => {
    const victim = await joinedClient(node, 'noban', 'k-zero');
    await kick(node, 'k-zero', { uid: 'noban', seconds: 0 });
    await victim.op('kicked');
    expect(await request(victim, { op: 'join', room: 'k-zero' })).toMatchObject({ op: 'joined' });
    await victim.close();
  });
});

describe('mute through the API', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode(BASE);
  });
  afterAll(() => node?.stop());

  it('mutes one user: muted {room, until}, chat refused with MUTED and retryMs; others speak', async () => {
    const loud = await joinedClient(node, 'loud', 'm-room');
    const calm = await joinedClient(node, 'calm', 'm-room');
    const before = Date.now();
    const res = await mute(node, 'm-room', { uid: 'loud', seconds: 30 });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, until: expect.any(Number) });
    const until = res.body.until as number;
    expect(until).toBeGreaterThanOrEqual(before + 30_000 - 50);
    expect(until).toBeLessThanOrEqual(Date.now() + 30_000 + 50);
    expect(await loud.op('muted')).toEqual({ op: 'muted', room: 'm-room', until });

    const refused = await chat(loud, 'm-room', 'let me speak');
    expect(refused).toMatchObject({ op: 'error', code: 'MUTED' });
    expect(refused.retryMs as number).toBeGreaterThan(25_000);
    expect(refused.retryMs as number).toBeLessThanOrEqual(30_000);
    expect(await chat(calm, 'm-room', 'I can')).toMatchObject({ op: 'ack', shown: true });
    await waitMsg(loud, 'm-room', (m) => m.b === 'I can');
    expect(delivered(calm, 'm-room').map((m) => m.b)).not.toContain('let me speak');
    expect(calm.frames.some((f) => f.op === 'muted')).toBe(false);
    // Muted in this room only.
    await request(loud, { op: 'join', room: 'm-elsewhere' });
    expect(await chat(loud, 'm-elsewhere', 'here I can')).toMatchObject({ op: 'ack', shown: true });

    // seconds 0 unmutes.
    const un = await mute(node, 'm-room', { uid: 'loud', seconds: 0 });
    expect(un.body).toEqual({ ok: true, until: 0 });
    expect(await loud.op('muted', (f) => f.until === 0)).toEqual({ op: 'muted', room: 'm-room', until: 0 });
    expect(await chat(loud, 'm-room', 'back again')).toMatchObject({ op: 'ack', shown: true });
    await waitMsg(calm, 'm-room', (m) => m.b === 'back again');
    await Promise.all([loud.close(), calm.close()]);
  });

  it('ends a mute by itself after `seconds`', async () => {
    const c = await joinedClient(node, 'short', 'm-short');
    await mute(node, 'm-short', { uid: 'short', seconds: 1 });
    const refused = await chat(c, 'm-short', 'now?');
    expect(refused).toMatchObject({ op: 'error', code: 'MUTED' });
    await sleep((refused.retryMs as number) + 200);
    expect(await chat(c, 'm-short', 'now')).toMatchObject({ op: 'ack', shown: true });
    await c.close();
  });

  it('mutes the whole room: muted {all:true} to everyone, viewers refused, moderators and the API speak', async () => {
    const viewer = await joinedClient(node, 'viewer', 'm-all');
    const mod = await joinedClient(node, 'mod', 'm-all', { role: 'moderator' });
    const res = await mute(node, 'm-all', { seconds: 30 });
    expect(res.body).toEqual({ ok: true, until: expect.any(Number) });
    const until = res.body.until as number;
    for (const c of [viewer, mod]) expect(await c.op('muted')).toEqual({ op: 'muted', room: 'm-all', until, all: true });

    expect(await chat(viewer, 'm-all', 'hello?')).toMatchObject({ op: 'error', code: 'MUTED', retryMs: expect.any(Number) });
    expect(await chat(mod, 'm-all', 'moderator speaking')).toMatchObject({ op: 'ack', shown: true });
    await postShown(node, 'm-all', { kind: 'system', body: 'api speaking' });
    await postShown(node, 'm-all', { kind: 'note', body: 'api normal priority' });
    await waitMsg(viewer, 'm-all', (m) => m.b === 'api normal priority');
    const seen = delivered(viewer, 'm-all').map((m) => m.b);
    expect(seen).toEqual(expect.arrayContaining(['moderator speaking', 'api speaking']));
    expect(seen).not.toContain('hello?');

    // A member joining while the room is muted is told right after joined.
    const late = await joinedClient(node, 'late', 'm-all');
    expect(await late.op('muted')).toEqual({ op: 'muted', room: 'm-all', until, all: true });
    expect(await chat(late, 'm-all', 'me too?')).toMatchObject({ op: 'error', code: 'MUTED' });

    // Unmuting the room.
    expect((await mute(node, 'm-all', { seconds: 0 })).body).toEqual({ ok: true, until: 0 });
    expect(await viewer.op('muted', (f) => f.until === 0)).toEqual({ op: 'muted', room: 'm-all', until: 0, all: true });
    expect(await chat(viewer, 'm-all', 'finally')).toMatchObject({ op: 'ack', shown: true });
    await Promise.all([viewer.close(), mod.close(), late.close()]);
  });

  it('a room mute does not lift a user mute, nor the reverse', async () => {
    const c = await joinedClient(node, 'both', 'm-both');
    await mute(node, 'm-both', { uid: 'both', seconds: 30 });
    await mute(node, 'm-both', { seconds: 30 });
    await mute(node, 'm-both', { seconds: 0 });
    expect(await chat(c, 'm-both', 'x')).toMatchObject({ op: 'error', code: 'MUTED' });
    await mute(node, 'm-both', { uid: 'both', seconds: 0 });
    expect(await chat(c, 'm-both', 'y')).toMatchObject({ op: 'ack', shown: true });
    await c.close();
  });
});

describe('moderator WebSocket ops share the API code path', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ ...BASE, muteSeconds: 300 });
  });
  afterAll(() => node?.stop());

  let seq = 0;
  async function room(): Promise<{ name: string; mod: Client; target: Client; viewer: Client }> {
    const name = `ws-${++seq}`;
    const mod = await joinedClient(node, `mod-${seq}`, name, { role: 'moderator' });
    const target = await joinedClient(node, `target-${seq}`, name);
    const viewer = await joinedClient(node, `viewer-${seq}`, name);
    return { name, mod, target, viewer };
  }

  it('kick: ack to the moderator, kicked {room, reason} to the user, rejoin refused, expiry honoured', async () => {
    const r = await room();
    const ack = await request(r.mod, { op: 'kick', room: r.name, uid: `target-${seq}`, reason: 'rude', seconds: 1 });
    expect(ack).toEqual({ op: 'ack', ref: expect.any(Number), shown: true });
    expect(await r.target.op('kicked')).toEqual({ op: 'kicked', room: r.name, reason: 'rude' });
    const refused = await request(r.target, { op: 'join', room: r.name });
    expect(refused).toMatchObject({ op: 'error', code: 'KICKED' });
    expect(refused.retryMs as number).toBeLessThanOrEqual(1000);
    await sleep((refused.retryMs as number) + 200);
    expect(await request(r.target, { op: 'join', room: r.name })).toMatchObject({ op: 'joined' });
    await Promise.all([r.mod.close(), r.target.close(), r.viewer.close()]);
  });

  it('mute: muted {room, until} to the user, chat MUTED, default length muteSeconds', async () => {
    const r = await room();
    const before = Date.now();
    expect(await request(r.mod, { op: 'mute', room: r.name, uid: `target-${seq}` })).toMatchObject({ op: 'ack', shown: true });
    const muted = await r.target.op('muted');
    expect(muted).toEqual({ op: 'muted', room: r.name, until: expect.any(Number) });
    expect(muted.until as number).toBeGreaterThanOrEqual(before + 300_000 - 50);
    expect(muted.until as number).toBeLessThanOrEqual(Date.now() + 300_000 + 50);
    expect(await chat(r.target, r.name, 'hm')).toMatchObject({ op: 'error', code: 'MUTED' });
    // The API lifts a mute set over WebSocket: one moderation state.
    expect((await mute(node, r.name, { uid: `target-${seq}`, seconds: 0 })).body).toEqual({ ok: true, until: 0 });
    expect(await chat(r.target, r.name, 'thanks')).toMatchObject({ op: 'ack', shown: true });
    await Promise.all([r.mod.close(), r.target.close(), r.viewer.close()]);
  });

  it('room mute over WebSocket (no uid) and unmute with seconds 0, as the API does', async () => {
    const r = await room();
    expect(await request(r.mod, { op: 'mute', room: r.name, seconds: 30 })).toMatchObject({ op: 'ack' });
    expect(await r.viewer.op('muted')).toMatchObject({ room: r.name, all: true });
    expect(await chat(r.viewer, r.name, 'x')).toMatchObject({ op: 'error', code: 'MUTED' });
    expect(await chat(r.mod, r.name, 'mods speak')).toMatchObject({ op: 'ack', shown: true });
    // The API's mute is lifted by the WebSocket op and vice versa.
    expect(await request(r.mod, { op: 'mute', room: r.name, seconds: 0 })).toMatchObject({ op: 'ack' });
    expect(await r.viewer.op('muted', (f) => f.until === 0)).toMatchObject({ all: true, until: 0 });
    expect(await chat(r.viewer, r.name, 'y')).toMatchObject({ op: 'ack', shown: true });
    await mute(node, r.name, { uid: `viewer-${seq}`, seconds: 30 });
    expect(await chat(r.viewer, r.name, 'z')).toMatchObject({ op: 'error', code: 'MUTED' });
    expect(await request(r.mod, { op: 'mute', room: r.name, uid: `viewer-${seq}`, seconds: 0 })).toMatchObject({ op: 'ack' });
    expect(await chat(r.viewer, r.name, 'w')).toMatchObject({ op: 'ack', shown: true });
    await Promise.all([r.mod.close(), r.target.close(), r.viewer.close()]);
  });

  it('an API kick and a WebSocket kick produce the same frames and the same ban', async () => {
    const r = await room();
    await request(r.mod, { op: 'kick', room: r.name, uid: `target-${seq}`, reason: 'r' });
    await kick(node, r.name, { uid: `viewer-${seq}`, reason: 'r' });
    const viaWs = await r.target.op('kicked');
    const viaApi = await r.viewer.op('kicked');
    expect(viaWs).toEqual(viaApi);
    const a = await request(r.target, { op: 'join', room: r.name });
    const b = await request(r.viewer, { op: 'join', room: r.name });
    expect({ code: a.code, message: a.message }).toEqual({ code: b.code, message: b.message });
    expect(Math.abs((a.retryMs as number) - (b.retryMs as number))).toBeLessThan(1000);
    await Promise.all([r.mod.close(), r.target.close(), r.viewer.close()]);
  });

  it('refuses kick/mute from viewers (FORBIDDEN) and from moderators outside the room (NOT_JOINED)', async () => {
    const r = await room();
    expect(await request(r.viewer, { op: 'kick', room: r.name, uid: `target-${seq}` })).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    expect(await request(r.viewer, { op: 'mute', room: r.name, uid: `target-${seq}` })).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    expect(await request(r.mod, { op: 'kick', room: 'elsewhere', uid: `target-${seq}` })).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    await sleep(50);
    expect(r.target.frames.some((f) => f.op === 'kicked' || f.op === 'muted')).toBe(false);
    expect(await chat(r.target, r.name, 'unharmed')).toMatchObject({ op: 'ack', shown: true });
    await Promise.all([r.mod.close(), r.target.close(), r.viewer.close()]);
  });
});
