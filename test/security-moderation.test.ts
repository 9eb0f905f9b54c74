// Issue 14, finding 2: moderator ops must not exhaust memory. uid is at most 64 chars on every
// path, moderator ops are rate-limited, and the ban and mute tables are bounded and measured.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, SECRET, startTestNode } from './helpers.js';
import { api } from './api-helpers.js';
import { closeAll, member, metric, request, uniq, user } from './ws-helpers.js';

describe('finding 2: moderator ops are bounded', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, secret: SECRET, apiKey: API_KEY, maxModerationEntries: 10, joinRate: 100, joinBurst: 100 });
  });
  afterAll(() => node?.stop());

  it('a uid over 64 chars in kick or mute is BAD_FRAME (and never stored); 64 is fine', async () => {
    const room = uniq('mod-uid');
    const mod = (await member(node, uniq('mod'), room, { role: 'moderator' })).c;
    for (const uid of ['u'.repeat(65), 'u'.repeat(16_000)]) {
      expect(await request(mod, { op: 'kick', room, uid, seconds: 3600 })).toMatchObject({ op: 'error', code: 'BAD_FRAME' });
      expect(await request(mod, { op: 'mute', room, uid, seconds: 60 })).toMatchObject({ op: 'error', code: 'BAD_FRAME' });
    }
    expect(await request(mod, { op: 'kick', room, uid: 'u'.repeat(64) })).toMatchObject({ op: 'ack' });
    // The API and tokens use the same bound.
    expect((await api(node, 'POST', `/v1/rooms/${room}/kick`, { uid: 'u'.repeat(65) })).status).toBe(400);
    await closeAll(mod);
  });

  it('moderator ops are rate-limited per user: past modBurst (10) they get RATE_LIMITED with retryMs', async () => {
    const room = uniq('mod-rate');
    const mod = (await member(node, uniq('mod'), room, { role: 'moderator' })).c;
    const replies = await Promise.all(Array.from({ length: 25 }, (_, i) => request(mod, { op: 'mute', room, uid: `target-${i}`, seconds: 60 })));
    expect(replies.filter((f) => f.op === 'ack').length).toBeLessThanOrEqual(11);
    const limited = replies.filter((f) => f.op === 'error');
    expect(limited.length).toBeGreaterThanOrEqual(14);
    for (const f of limited) expect(f).toMatchObject({ code: 'RATE_LIMITED', retryMs: expect.any(Number) });
    await closeAll(mod);
  });

  it('the ban table holds at most maxModerationEntries: the oldest ban goes first; sizes are in metrics', async () => {
    expect(await metric(node.port, 'roomcast_moderation_entries', { table: 'room_mutes' })).toBe(0);
    const room = uniq('bans');
    const uids = Array.from({ length: 25 }, () => uniq('banned'));
    for (const uid of uids) expect((await api(node, 'POST', `/v1/rooms/${room}/kick`, { uid, seconds: 3600 })).status).toBe(200);
    expect(await metric(node.port, 'roomcast_moderation_entries', { table: 'bans' })).toBe(10);
    const newest = await user(node, uids.at(-1)!);
    expect(await request(newest, { op: 'join', room })).toMatchObject({ op: 'error', code: 'KICKED' });
    const oldest = await user(node, uids[0]!);
    expect(await request(oldest, { op: 'join', room })).toMatchObject({ op: 'joined' });
    await closeAll(newest, oldest);
  });
});
