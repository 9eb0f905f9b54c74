// The ingress path's decision order, on one worker's real parts (config, metrics, sessions,
// moderation, outboxes) with a recording connection and a settable clock and loop lag: the
// frame budget before anything, shedding before a frame is validated, an expired token before
// the op, then the send policy — guests, NOT_JOINED, mutes, the per-user rate, the bus, the
// blocklist — and the ack owed to a queued message only while its connection is open.
import { encode } from '@msgpack/msgpack';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createVerifier, type Credentials } from '../src/auth/tokens.js';
import { buildConfig } from '../src/config/load.js';
import { Ingress } from '../src/engine/ingress.js';
import { Sessions } from '../src/engine/sessions.js';
import { TokenExpiry } from '../src/engine/token-expiry.js';
import { localUsers } from '../src/engine/users.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { CLOSE } from '../src/protocol/errors.js';
import type { ServerOp } from '../src/protocol/ops.js';
import { ConnState, type Connection } from '../src/rooms/connection.js';
import { Membership } from '../src/rooms/membership.js';
import { Moderation } from '../src/rooms/moderation.js';
import { Outboxes } from '../src/tick/outbox.js';

const ROOM = 'stage';

class RecordingConn extends ConnState implements Connection {
  readonly compress = false;
  readonly sent: ServerOp[] = [];
  readonly closes: number[] = [];
  constructor(
    public creds: Credentials,
    readonly sid = 'sid-1',
  ) {
    super();
  }
  send(op: ServerOp): void {
    this.sent.push(op);
  }
  sendWithBatch(op: ServerOp, _room: string): void {
    this.sent.push(op);
  }
  sendEncoded(): void {}
  subscribe(): void {}
  subscribed(): boolean {
    return false;
  }
  unsubscribe(): void {}
  drained(): Promise<void> {
    return Promise.resolve();
  }
  close(code: number): void {
    this.closes.push(code);
  }
  /** The last frame sent, taken off the record. */
  last(): ServerOp | undefined {
    return this.sent.pop();
  }
}

function worker(config: Record<string, unknown> = {}) {
  const clock = { t: 1_000_000 };
  const now = () => clock.t;
  const cfg = buildConfig({ shedLagMs: 100, chatRate: 1, chatBurst: 1, badFrameLimit: 3, ...config });
  const metrics = createMetrics(new Registry(), { defaultMetrics: false });
  const membership = new Membership();
  const moderation = new Moderation(now, 100);
  const users = localUsers((uid) => membership.countOf(uid));
  const outboxes = new Outboxes();
  const lag = { ms: 0 };
  const bus = { up: true, available: () => bus.up };
  const sessions = new Sessions({
    membership,
    rooms: { leave: () => undefined, dropped: () => undefined },
    moderation,
    users,
    expiry: new TokenExpiry({ graceSec: cfg.tokenGraceSec, metrics, now }),
    verifier: createVerifier('x'.repeat(32)),
    metrics,
    config: cfg,
    nodeId: 'n1',
    now,
  });
  const handed: string[] = [];
  const ingress = new Ingress({
    config: cfg,
    metrics,
    log: pino({ enabled: false }),
    lag,
    outboxes,
    bus,
    moderation,
    users,
    sessions,
    joins: {
      join: async (_c, op) => void handed.push(`join ${op.room}`),
      leave: (_c, op) => void handed.push(`leave ${op.room}`),
    },
    controls: { moderate: async (_c, op) => void handed.push(op.op) },
    prefilter: (_room, body) => !body.includes('spam'),
    now,
  });
  const connect = (over: Partial<Credentials> = {}) => {
    const c = new RecordingConn({ uid: 'u1', role: 'viewer', exp: clock.t / 1000 + 3_600, ...over });
    sessions.open(c, c.sid);
    c.sent.length = 0; // the welcome
    return c;
  };
  const frame = (c: Connection, op: Record<string, unknown>) => ingress.frame(c, encode(op), true);
  const counted = async (name: string) => (await metrics.messagesReceived.get()).values.filter((v) => v.labels.result === name).reduce((n, v) => n + v.value, 0);
  return { clock, lag, bus, moderation, outboxes, sessions, handed, ingress, connect, frame, counted, metrics };
}

const code = (op: ServerOp | undefined) => (op?.op === 'error' ? op.code : op?.op);

describe('ingress decision order', () => {
  it('a send refused walks the policy in order: guest, NOT_JOINED, muted, rate limited, bus down, blocklist', () => {
    const w = worker();
    const chat = (c: Connection, body = 'hi') => w.frame(c, { op: 'send', room: ROOM, kind: 'chat', body, ref: 1 });

    // A guest is refused first, though it is also not in the room and the room is muted.
    w.moderation.mute(ROOM, undefined, w.clock.t + 60_000);
    const guest = w.connect({ uid: 'g1', role: 'guest' });
    chat(guest);
    expect(code(guest.last())).toBe('FORBIDDEN');

    const c = w.connect();
    chat(c);
    expect(code(c.last())).toBe('NOT_JOINED');
    c.rooms.add(ROOM);
    chat(c);
    expect(code(c.last())).toBe('MUTED');
    w.moderation.mute(ROOM, undefined, 0);

    // Refused for the bus, the message still took the user's one token: the rate comes first.
    w.bus.up = false;
    chat(c);
    expect(code(c.last())).toBe('UNAVAILABLE');
    chat(c);
    expect(c.last()).toMatchObject({ op: 'error', code: 'RATE_LIMITED', ref: 1, retryMs: expect.any(Number) });

    w.bus.up = true;
    w.clock.t += 1000;
    chat(c, 'buy spam');
    expect(code(c.last())).toBe('REJECTED');
    w.clock.t += 1000;
    chat(c);
    expect(c.sent).toEqual([]); // queued: the ack waits for the tick
    expect(w.outboxes.take().get(ROOM)?.normal).toMatchObject([{ msg: { u: 'u1', k: 'chat', b: 'hi' }, review: true }]);
  });

  it('a moderator is exempt from a room mute, not from its own', () => {
    const w = worker();
    const mod = w.connect({ uid: 'm1', role: 'moderator' });
    mod.rooms.add(ROOM);
    w.moderation.mute(ROOM, undefined, w.clock.t + 60_000);
    w.frame(mod, { op: 'send', room: ROOM, kind: 'like', ref: 2 });
    expect(mod.sent).toEqual([]);
    w.moderation.mute(ROOM, 'm1', w.clock.t + 60_000);
    w.frame(mod, { op: 'send', room: ROOM, kind: 'like', ref: 3 });
    expect(mod.last()).toMatchObject({ op: 'error', code: 'MUTED', ref: 3 });
  });

  it('while the loop lags, chat and likes are shed before validation; other ops go on', async () => {
    const w = worker();
    const c = w.connect();
    // Not a valid send (no room, no body): judged BAD_FRAME when read...
    const invalid = { op: 'send', kind: 'chat', ref: 4 };
    w.frame(c, invalid);
    expect(code(c.last())).toBe('BAD_FRAME');
    // ...but unread while the loop lags: a sender with a ref hears it was shed.
    w.lag.ms = 150;
    w.frame(c, invalid);
    expect(c.last()).toMatchObject({ op: 'error', code: 'RATE_LIMITED', ref: 4, retryMs: 1000 });
    w.frame(c, { op: 'send', room: ROOM, kind: 'like' });
    expect(c.sent).toEqual([]); // no ref, no reply
    expect((await w.metrics.shed.get()).values.map((v) => [v.labels.kind, v.value])).toEqual([
      ['chat', 1],
      ['like', 1],
    ]);
    w.frame(c, { op: 'ping', ref: 5 });
    expect(c.last()).toMatchObject({ op: 'pong', ref: 5 });
    w.frame(c, { op: 'join', room: ROOM });
    await Promise.resolve();
    expect(w.handed).toEqual([`join ${ROOM}`]);
  });

  it('the frame budget comes first; bad frames past the limit close the socket', () => {
    const w = worker({ frameRate: 1, frameBurst: 2 });
    const c = w.connect();
    w.ingress.frame(c, new TextEncoder().encode('{}'), false);
    expect(c.last()).toMatchObject({ op: 'error', code: 'BAD_FRAME', message: 'frames must be binary' });
    w.frame(c, { op: 'ping', ref: 1 });
    expect(code(c.last())).toBe('pong');
    // Over the budget, even a text frame is refused for the rate, not for its type.
    w.ingress.frame(c, new TextEncoder().encode('{}'), false);
    expect(c.last()).toMatchObject({ op: 'error', code: 'RATE_LIMITED', retryMs: expect.any(Number) });
    // The budget is the connection's own: the same user's second socket still gets its pong.
    const c2 = w.connect();
    w.frame(c2, { op: 'ping', ref: 2 });
    expect(code(c2.last())).toBe('pong');
    w.frame(c, { op: 'ping' });
    expect(c.closes).toEqual([]);
    w.frame(c, { op: 'ping' }); // the fourth bad frame of the minute (badFrameLimit 3)
    expect(c.closes).toEqual([CLOSE.BAD_FRAMES]);
  });

  it('an expired token refuses every op but refresh, ping and leave', async () => {
    const w = worker();
    const c = w.connect({ exp: w.clock.t / 1000 });
    c.rooms.add(ROOM);
    w.frame(c, { op: 'send', room: ROOM, kind: 'chat', body: 'hi', ref: 1 });
    expect(c.last()).toMatchObject({ op: 'error', code: 'BAD_TOKEN', ref: 1 });
    expect(await w.counted('forbidden')).toBe(1);
    w.frame(c, { op: 'join', room: 'other', ref: 2 });
    expect(c.last()).toMatchObject({ op: 'error', code: 'BAD_TOKEN', ref: 2 });
    w.frame(c, { op: 'ping', ref: 3 });
    expect(code(c.last())).toBe('pong');
    w.frame(c, { op: 'leave', room: ROOM, ref: 4 });
    w.frame(c, { op: 'refresh', token: 'not-a-jwt', ref: 5 });
    expect(w.handed).toEqual([`leave ${ROOM}`]);
    expect(c.last()).toMatchObject({ op: 'error', code: 'BAD_TOKEN', ref: 5 }); // refresh reached the session
  });

  it('a like frame with count is that many likes: counted, rate-limited whole, bounded', async () => {
    const w = worker({ likeRate: 10, likeBurst: 10 });
    const c = w.connect();
    c.rooms.add(ROOM);
    w.frame(c, { op: 'send', room: ROOM, kind: 'like', count: 6 });
    w.frame(c, { op: 'send', room: ROOM, kind: 'like', count: 3, ref: 9 });
    expect(c.sent).toEqual([]);
    // 1 left in the bucket: a frame of 2 is refused whole, and counted as 2 likes refused.
    w.frame(c, { op: 'send', room: ROOM, kind: 'like', count: 2, ref: 10 });
    expect(c.last()).toMatchObject({ op: 'error', code: 'RATE_LIMITED', ref: 10, retryMs: 100 });
    expect(await w.counted('rate_limited')).toBe(2);
    w.frame(c, { op: 'send', room: ROOM, kind: 'like', count: 11, ref: 11 });
    const never = c.last();
    expect(never).toMatchObject({ op: 'error', code: 'RATE_LIMITED', ref: 11 });
    expect((never as { retryMs?: unknown }).retryMs).toBeUndefined();
    for (const count of [0, 101, -1, 1.5, '2']) {
      w.frame(c, { op: 'send', room: ROOM, kind: 'like', count, ref: 12 });
      expect(c.last()).toMatchObject({ op: 'error', code: 'BAD_FRAME', ref: 12 });
    }
    const box = w.outboxes.take().get(ROOM)!;
    expect(box.likes).toBe(9);
    expect(box.likeReplies).toHaveLength(1);
    // Shed unread, a like frame's count is still what the shed counter counts.
    w.lag.ms = 1000;
    w.frame(c, { op: 'send', room: ROOM, kind: 'like', count: 4 });
    expect((await w.metrics.shed.get()).values.find((v) => v.labels.kind === 'like')?.value).toBe(4);
  });

  it('the reply owed to a queued message goes out only while its connection is open', () => {
    const w = worker({ likeBurst: 10 });
    const c = w.connect();
    c.rooms.add(ROOM);
    w.frame(c, { op: 'send', room: ROOM, kind: 'like' });
    w.frame(c, { op: 'send', room: ROOM, kind: 'like', ref: 7 });
    w.frame(c, { op: 'send', room: ROOM, kind: 'chat', body: 'hi', ref: 8 });
    const box = w.outboxes.take().get(ROOM)!;
    expect(box.likes).toBe(2);
    expect(box.likeReplies).toHaveLength(1); // a like without ref is owed nothing
    box.likeReplies[0]!({ shown: true, seq: 41 });
    expect(c.last()).toEqual({ op: 'ack', ref: 7, shown: true, seq: 41 });
    w.sessions.closed(c);
    box.normal[0]!.reply({ shown: false });
    expect(c.sent).toEqual([]);
  });
});
