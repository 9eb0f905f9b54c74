// PROTOCOL §2/§3/§4: moderators (token role moderator) kick and mute in rooms they have joined.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { sleep, startTestNode, token, connect } from './helpers.js';
import { closeAll, expectNone, member, request, uniq, user } from './ws-helpers.js';

describe('moderation', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, chatRate: 50, chatBurst: 50 });
  });
  afterAll(() => node.stop());

  async function scene(prefix: string) {
    const room = uniq(prefix);
    const mod = (await member(node, uniq('mod'), room, { role: 'moderator' })).c;
    const targetUid = uniq('target');
    const target = (await member(node, targetUid, room)).c;
    const bystander = (await member(node, uniq('bystander'), room)).c;
    return { room, mod, target, targetUid, bystander };
  }

  it('kick: ack to the moderator, `kicked {room}` to the target, who is out of the room', async () => {
    const { room, mod, target, targetUid, bystander } = await scene('kick');
    const other = uniq('kick-other');
    await request(target, { op: 'join', room: other });
    const ref = 31;
    mod.send({ op: 'kick', room, uid: targetUid, ref });
    expect(await mod.reply(ref)).toMatchObject({ op: 'ack', ref });
    const kicked = await target.op('kicked');
    expect(kicked).toMatchObject({ op: 'kicked', room });
    const kickedAt = target.frames.indexOf(kicked);
    // Out of the room: no more batches from it, and sending there is NOT_JOINED.
    await request(bystander, { op: 'send', room, kind: 'chat', body: 'after the kick' });
    await bystander.waitFor((f) => f.op === 'batch' && (f.msgs as Array<{ b: string }>).some((m) => m.b === 'after the kick'));
    await expectNone(target, (f) => f.op === 'batch' && f.room === room, 100);
    expect(target.frames.slice(kickedAt).filter((f) => f.op === 'batch' && f.room === room)).toEqual([]);
    expect(await request(target, { op: 'send', room, kind: 'chat', body: 'let me in' })).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    expect(await request(target, { op: 'leave', room })).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    // Rejoining is refused, by op and by reconnecting with the room in the query.
    expect(await request(target, { op: 'join', room })).toMatchObject({ op: 'error', code: 'KICKED' });
    const t = await token(node, { uid: targetUid });
    const again = await connect(node.port, { token: t, room });
    expect(await again.op('error')).toMatchObject({ code: 'KICKED' });
    expect(again.frames.some((f) => f.op === 'joined')).toBe(false);
    // Other rooms are not affected.
    await request(bystander, { op: 'join', room: other });
    expect(await request(target, { op: 'send', room: other, kind: 'chat', body: 'elsewhere' })).toMatchObject({ op: 'ack', shown: true });
    // Other users can still join the room.
    const { c: newcomer } = await member(node, uniq('newcomer'), room);
    await closeAll(mod, target, bystander, again, newcomer);
  });

  it('kick reaches every connection of the user', async () => {
    const { room, mod, target, targetUid, bystander } = await scene('kick-all');
    const second = (await member(node, targetUid, room)).c;
    expect(await request(mod, { op: 'kick', room, uid: targetUid })).toMatchObject({ op: 'ack' });
    await target.op('kicked');
    await second.op('kicked');
    expect(await request(second, { op: 'send', room, kind: 'chat', body: 'x' })).toMatchObject({ code: 'NOT_JOINED' });
    await closeAll(mod, target, second, bystander);
  });

  it('kick seconds sets the ban length: after a 1 s ban the user may rejoin', async () => {
    const { room, mod, target, targetUid, bystander } = await scene('kick-short');
    expect(await request(mod, { op: 'kick', room, uid: targetUid, seconds: 1 })).toMatchObject({ op: 'ack' });
    await target.op('kicked');
    expect(await request(target, { op: 'join', room })).toMatchObject({ op: 'error', code: 'KICKED' });
    await sleep(1100);
    expect(await request(target, { op: 'join', room })).toMatchObject({ op: 'joined', room });
    await request(bystander, { op: 'send', room, kind: 'chat', body: 'welcome back' });
    await target.waitFor((f) => f.op === 'batch' && (f.msgs as Array<{ b: string }>).some((m) => m.b === 'welcome back'));
    await closeAll(mod, target, bystander);
  });

  it('mute with seconds: `muted {room, until}` to the target; its sends get MUTED with retryMs', async () => {
    const { room, mod, target, targetUid, bystander } = await scene('mute');
    const before = Date.now();
    expect(await request(mod, { op: 'mute', room, uid: targetUid, seconds: 30 })).toMatchObject({ op: 'ack' });
    const muted = await target.op('muted');
    expect(muted).toMatchObject({ op: 'muted', room });
    expect(muted.until as number).toBeGreaterThanOrEqual(before + 30_000 - 50);
    expect(muted.until as number).toBeLessThanOrEqual(Date.now() + 30_000 + 50);
    expect(bystander.frames.some((f) => f.op === 'muted')).toBe(false);
    const err = await request(target, { op: 'send', room, kind: 'chat', body: 'hello?' });
    expect(err).toMatchObject({ op: 'error', code: 'MUTED' });
    expect(err.retryMs).toBeGreaterThan(25_000);
    expect(err.retryMs).toBeLessThanOrEqual(30_000);
    expect(await request(target, { op: 'send', room, kind: 'like' })).toMatchObject({ op: 'error', code: 'MUTED' });
    // Still a member: it keeps receiving the room.
    await request(bystander, { op: 'send', room, kind: 'chat', body: 'you can still read' });
    await target.waitFor((f) => f.op === 'batch' && (f.msgs as Array<{ b: string }>).some((m) => m.b === 'you can still read'));
    // Other users and other rooms are not muted.
    expect(await request(bystander, { op: 'send', room, kind: 'chat', body: 'me?' })).toMatchObject({ op: 'ack' });
    const other = uniq('mute-other');
    await request(target, { op: 'join', room: other });
    expect(await request(target, { op: 'send', room: other, kind: 'chat', body: 'elsewhere' })).toMatchObject({ op: 'ack' });
    // seconds: 0 unmutes.
    expect(await request(mod, { op: 'mute', room, uid: targetUid, seconds: 0 })).toMatchObject({ op: 'ack' });
    expect(await target.op('muted', (f) => f.until === 0)).toMatchObject({ op: 'muted', room, until: 0 });
    expect(await request(target, { op: 'send', room, kind: 'chat', body: 'free again' })).toMatchObject({ op: 'ack', shown: true });
    await closeAll(mod, target, bystander);
  });

  it('a short mute expires on its own', async () => {
    const { room, mod, target, targetUid, bystander } = await scene('mute-short');
    await request(mod, { op: 'mute', room, uid: targetUid, seconds: 1 });
    const err = await request(target, { op: 'send', room, kind: 'chat', body: 'x' });
    expect(err).toMatchObject({ code: 'MUTED' });
    await sleep((err.retryMs as number) + 50);
    expect(await request(target, { op: 'send', room, kind: 'chat', body: 'y' })).toMatchObject({ op: 'ack' });
    await closeAll(mod, target, bystander);
  });

  it('a moderator must have joined the room: NOT_JOINED otherwise', async () => {
    const { room, target, targetUid, bystander } = await scene('mod-outside');
    const mod = await user(node, uniq('mod'), { role: 'moderator' });
    expect(await request(mod, { op: 'kick', room, uid: targetUid })).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    expect(await request(mod, { op: 'mute', room, uid: targetUid, seconds: 10 })).toMatchObject({ op: 'error', code: 'NOT_JOINED' });
    await sleep(50);
    expect(target.frames.some((f) => f.op === 'kicked' || f.op === 'muted')).toBe(false);
    expect(await request(target, { op: 'send', room, kind: 'chat', body: 'fine' })).toMatchObject({ op: 'ack' });
    await closeAll(mod, target, bystander);
  });

  it('viewers may not kick or mute (FORBIDDEN), even in their room', async () => {
    const { room, target, targetUid, bystander } = await scene('viewer');
    expect(await request(bystander, { op: 'kick', room, uid: targetUid })).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    expect(await request(bystander, { op: 'mute', room, uid: targetUid, seconds: 5 })).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    expect(await request(target, { op: 'send', room, kind: 'chat', body: 'fine' })).toMatchObject({ op: 'ack' });
    await closeAll(target, bystander);
  });
});
