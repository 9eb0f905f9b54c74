// Issue 14, one connection flooding cheap ops: a reader that never reads must not hold more
// than the reply cap (finding 3), and every inbound frame counts against a per-connection
// budget whose refusals lead to the 4008 close (finding 5).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { NO_FRAME_BUDGET, startTestNode, token } from './helpers.js';
import { hasPython } from './fuzz-helpers.js';
import { closeAll, metric, request, uniq, user } from './ws-helpers.js';
import { nonReader } from './security-helpers.js';

const PINGS = 40_000;

describe.skipIf(!hasPython())('finding 3: a reader that never reads', () => {
  let free: RoomcastNode;
  let dflt: RoomcastNode;
  beforeAll(async () => {
    // `free` lifts the frame budget, so only the reply cap can stop the flood.
    [free, dflt] = await Promise.all([startTestNode({ ...NO_FRAME_BUDGET, tickMs: 20 }), startTestNode({ tickMs: 20 })]);
  });
  afterAll(async () => {
    await Promise.all([free?.stop(), dflt?.stop()]);
  });

  it('40k pings without reading: the queued pongs count with their overhead, so the socket is closed 4009', async () => {
    // 40k pongs are ~880 KB of bytes, under the 1 MiB cap, but ~10 MB of heap.
    const t = await token(free, { uid: uniq('nonreader') });
    const r = await nonReader({ port: free.port, path: `/ws?token=${t}`, burst: [[{ op: 'ping' }, PINGS]], holdMs: 1500 });
    expect(r.error).toBeUndefined();
    // Closed by the server (4009; with its buffers full it may not get the close frame out).
    expect(r.eof).toBe(true);
    expect([4009, null]).toContain(r.closeCode);
    expect(r.ops.pong ?? 0).toBeLessThan(PINGS / 2);
    expect(await metric(free.port, 'roomcast_connections')).toBe(0);
  });

  it('with the default budget the same flood gets a few pongs, then RATE_LIMITED and 4008', async () => {
    const t = await token(dflt, { uid: uniq('nonreader') });
    const r = await nonReader({ port: dflt.port, path: `/ws?token=${t}`, burst: [[{ op: 'ping' }, PINGS]], holdMs: 500 });
    expect(r.error).toBeUndefined();
    expect(r.closeCode).toBe(4008);
    expect(r.ops.pong ?? 0).toBeLessThanOrEqual(41); // frameBurst 40 (+1 refilled)
    expect(r.ops.error ?? 0).toBeLessThanOrEqual(11); // badFrameLimit 10, the 11th closes
  });
});

describe('finding 5: a per-connection budget for every inbound frame', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20 });
  });
  afterAll(() => node?.stop());

  for (const [what, op] of [
    ['ping', { op: 'ping' }],
    ['leave of a room not joined (NOT_JOINED)', { op: 'leave', room: 'nowhere' }],
    ['send to a room not joined (NOT_JOINED)', { op: 'send', room: 'nowhere', kind: 'like' }],
    ['join with a bad room id (BAD_ROOM)', { op: 'join', room: 'bad room' }],
    ['kick by a viewer (FORBIDDEN)', { op: 'kick', room: 'r', uid: 'x' }],
  ] as const) {
    it(`a flood of ${what}: refused past frameBurst, counted, and closed 4008`, async () => {
      const before = await metric(node.port, 'roomcast_bad_frames_total', { code: 'RATE_LIMITED' });
      const c = await user(node, uniq('flooder'));
      for (let i = 0; i < 300; i++) c.send({ ...op, ref: i });
      expect(await c.closed).toBe(4008);
      const limited = c.frames.filter((f) => f.op === 'error' && f.code === 'RATE_LIMITED');
      expect(limited.length).toBe(11); // badFrameLimit 10: the 11th refusal closes
      expect(limited[0]!.retryMs).toBeGreaterThan(0);
      // Every frame within the budget got its own answer, none beyond it.
      expect(c.frames.filter((f) => typeof f.ref === 'number').length).toBeLessThanOrEqual(41);
      expect((await metric(node.port, 'roomcast_bad_frames_total', { code: 'RATE_LIMITED' })) - before).toBe(11);
    });
  }

  it('other connections of the same user keep their own budget and are served', async () => {
    const uid = uniq('twin');
    const [flooder, calm] = [await user(node, uid), await user(node, uid)];
    for (let i = 0; i < 300; i++) flooder.send({ op: 'ping', ref: i });
    expect(await flooder.closed).toBe(4008);
    expect((await request(calm, { op: 'ping' })).op).toBe('pong');
    await closeAll(calm);
  });
});
