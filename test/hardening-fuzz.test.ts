// Hardening: fuzzing the WebSocket side — the frame decoder and validation (MessagePack of every
// shape, wrong types in every field, huge and deeply nested values, invalid UTF-8), and uWS's
// WebSocket framing (bad opcodes, unmasked frames, RSV bits, continuation misuse, oversized and
// fragmented frames). Seeded and bounded for CI; `npm run fuzz` (bench/fuzz.mjs) runs it longer
// with other seeds (HARDENING_FUZZ_SEED, HARDENING_FUZZ_SCALE). The oracle: every frame gets
// exactly one reply, which is a documented error code or a well-formed reply; the only closes
// are the documented ones; and afterwards the worker still serves a fresh client.
import { decode } from '@msgpack/msgpack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { NO_FRAME_BUDGET, startTestNode, token, wsUrl } from './helpers.js';
import {
  BAD_FRAME_CODES,
  fenced,
  quietLike,
  FuzzClient,
  fuzzCount,
  fuzzTimeout,
  fuzzFrame,
  fuzzSeed,
  metric,
  mp,
  pool,
  RawWs,
  Rng,
  sleep,
  wsFrame,
  type Frame,
} from './fuzz-helpers.js';

const MAX_FRAME = 16384; // the default maxFrameBytes
const ROOMS = ['fz-a', 'fz-b', 'fz-c', 'x'.repeat(64)];

/** The ref the server can read from our frame (its peekRef), or undefined. */
function sentRef(bytes: Uint8Array | string, text: boolean | undefined): number | undefined {
  if (text || typeof bytes === 'string') return undefined;
  try {
    const v = decode(bytes) as Record<string, unknown>;
    const r = typeof v === 'object' && v !== null && !Array.isArray(v) ? v.ref : undefined;
    return typeof r === 'number' && Number.isSafeInteger(r) && r >= 0 ? r : undefined;
  } catch {
    return undefined;
  }
}

const hex = (b: Uint8Array | string) => (typeof b === 'string' ? JSON.stringify(b.slice(0, 80)) : Buffer.from(b).subarray(0, 64).toString('hex'));

async function freshClientWorks(node: RoomcastNode): Promise<void> {
  const t = await token(node, { uid: `fresh-${Date.now()}` });
  const c = await FuzzClient.open(wsUrl(node.port, { token: t }));
  c.send(mp({ op: 'ping', ref: 4242 }));
  await c.until(() => c.frames.some((f) => f.op === 'pong' && f.ref === 4242));
  expect(c.problems).toEqual([]);
  c.close();
}

describe('WebSocket frame fuzz (decoder and validation)', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    // badFrameLimit out of the way so one connection sees every frame; connects unlimited.
    node = await startTestNode({ ...NO_FRAME_BUDGET, tickMs: 10, badFrameLimit: 1_000_000, connectRate: 0 });
  });
  afterAll(() => node?.stop());

  it('seeded random, mutated and crafted frames: exactly one documented reply each, no close, no crash', async () => {
    const seed = fuzzSeed(0x5eed01);
    const rng = new Rng(seed);
    const total = fuzzCount(3000);
    const failures: string[] = [];
    const badBefore = await metric(node.port, 'roomcast_bad_frames_total');
    let badReplies = 0;
    const byCode = new Map<string, number>();
    let c: FuzzClient | undefined;
    let sentOnConn = 0;
    const t0 = Date.now();
    for (let i = 0; i < total && failures.length < 20; i++) {
      // A fresh user now and then, so rate limits and joins do not saturate everything.
      if (!c || i % 500 === 0) {
        c?.close();
        const t = await token(node, { uid: `fuzz-${seed}-${i}` });
        c = await FuzzClient.open(wsUrl(node.port, { token: t }));
        sentOnConn = 0;
      }
      const f = fuzzFrame(rng, MAX_FRAME, ROOMS);
      const before = c.replies().length;
      c.send(f.bytes, !f.text);
      sentOnConn++;
      try {
        if (quietLike(f.bytes, f.text)) {
          // The fence's pong is one more reply; an accepted like adds none.
          sentOnConn++;
          if (await fenced(c, before)) {
            sentOnConn--;
            continue;
          }
        }
        await c.until(() => c!.replies().length > before || c!.closeCode !== undefined, 5000);
      } catch {
        failures.push(`#${i} (${f.what}) got no reply; bytes ${hex(f.bytes)}`);
        c.close();
        c = undefined;
        continue;
      }
      if (c.closeCode !== undefined) {
        failures.push(`#${i} (${f.what}) closed the socket (${c.closeCode} ${c.closeReason}); bytes ${hex(f.bytes)}`);
        c = undefined;
        continue;
      }
      const reply = c.replies()[before]!;
      if (reply.op === 'error') {
        byCode.set(reply.code as string, (byCode.get(reply.code as string) ?? 0) + 1);
        if (BAD_FRAME_CODES.has(reply.code as string)) badReplies++;
      } else byCode.set(reply.op, (byCode.get(reply.op) ?? 0) + 1);
      const ref = sentRef(f.bytes, f.text);
      if (reply.ref !== undefined && reply.ref !== ref) failures.push(`#${i} (${f.what}) reply echoes ref ${String(reply.ref)}, sent ${String(ref)}`);
      if (f.what === 'text frame' && !(reply.op === 'error' && reply.code === 'BAD_FRAME')) failures.push(`#${i} text frame answered ${JSON.stringify(reply)}`);
      if (c.problems.length > 0) {
        failures.push(`#${i} (${f.what}): ${c.problems.splice(0).join('; ')}`);
      }
    }
    // No stray extra replies: once quiet, each frame on the last connection got exactly one.
    if (c) {
      await sleep(100);
      if (c.replies().length !== sentOnConn) failures.push(`last connection: ${sentOnConn} frames, ${c.replies().length} replies`);
      c.close();
    }
    expect(failures, `seed ${seed}`).toEqual([]);
    // The decoder rejects most of it; everything rejected as a bad frame was counted.
    expect(badReplies).toBeGreaterThan(total / 3);
    expect(byCode.get('pong') ?? 0).toBeGreaterThan(0);
    expect((await metric(node.port, 'roomcast_bad_frames_total')) - badBefore).toBe(badReplies);
    await freshClientWorks(node);
    console.log(`ws fuzz seed ${seed}: ${total} frames in ${Date.now() - t0} ms; replies ${JSON.stringify(Object.fromEntries(byCode))}`);
  }, fuzzTimeout(120_000));
});

describe('bad frames with the default badFrameLimit (10 per minute)', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 10, connectRate: 0 });
  });
  afterAll(() => node?.stop());

  it('the 11th BAD_FRAME/UNKNOWN_OP closes with 4008 — never earlier, and other errors do not count', async () => {
    const seed = fuzzSeed(0x5eed02);
    const rng = new Rng(seed);
    const conns = fuzzCount(25);
    const failures: string[] = [];
    for (let k = 0; k < conns; k++) {
      const t = await token(node, { uid: `limit-${seed}-${k}` });
      const c = await FuzzClient.open(wsUrl(node.port, { token: t }));
      let bad = 0;
      let sent = 0;
      while (c.closeCode === undefined && sent < 400) {
        const f = fuzzFrame(rng, MAX_FRAME, ROOMS);
        const before = c.replies().length;
        c.send(f.bytes, !f.text);
        sent++;
        try {
          if (quietLike(f.bytes, f.text) && (await fenced(c, before))) continue;
          await c.until(() => c.replies().length > before || c.closeCode !== undefined, 5000);
        } catch {
          failures.push(`conn ${k}: no reply to ${f.what}`);
          break;
        }
        const r = c.replies()[before];
        if (r?.op === 'error' && BAD_FRAME_CODES.has(r.code as string)) bad++;
        if (bad > 10) {
          await c.until(() => c.closeCode !== undefined, 3000).catch(() => undefined);
          break;
        }
        if (c.closeCode !== undefined) failures.push(`conn ${k}: closed ${c.closeCode} after only ${bad} bad frames`);
      }
      if (bad > 10 && (c.closeCode !== 4008 || c.closeReason !== 'too many bad frames')) failures.push(`conn ${k}: 11 bad frames, then close ${String(c.closeCode)}`);
      if (c.problems.length > 0) failures.push(`conn ${k}: ${c.problems.join('; ')}`);
      c.close();
    }
    expect(failures, `seed ${seed}`).toEqual([]);
    await freshClientWorks(node);
  }, fuzzTimeout(60_000));
});

describe('WebSocket framing (uWS), over a raw TCP socket', () => {
  let node: RoomcastNode;
  let path: string;
  beforeAll(async () => {
    // One user opens up to 16 sockets at once here: above the default maxConnsPerUser (10).
    node = await startTestNode({ ...NO_FRAME_BUDGET, tickMs: 10, connectRate: 0, badFrameLimit: 1_000_000, maxConnsPerUser: 100 });
    path = `/ws?token=${await token(node, { uid: 'framer' })}`;
  });
  afterAll(() => node?.stop());

  const ping = (ref: number) => mp({ op: 'ping', ref });

  /** Opens, writes `chunks`, and waits for `done` or the connection to close. */
  async function run(chunks: Buffer[], done: (w: RawWs) => boolean, waitMs = 3000, gapMs = 0): Promise<RawWs> {
    const w = await RawWs.open(node.port, path);
    for (const c of chunks) {
      w.write(c);
      if (gapMs) await sleep(gapMs);
    }
    await w.until(() => done(w) || w.tcpClosed, waitMs);
    return w;
  }
  const replies = (w: RawWs): Frame[] => w.messages().filter((m) => m.op !== 'welcome');
  const pongFor = (ref: number) => (w: RawWs) => replies(w).some((m) => m.op === 'pong' && m.ref === ref);

  it('a fragmented message is reassembled, with a ping between fragments answered at once', async () => {
    const p = Buffer.from(ping(7));
    const w = await run(
      [
        wsFrame({ fin: false, payload: p.subarray(0, 2) }),
        wsFrame({ opcode: 9, payload: 'pp' }),
        wsFrame({ fin: false, opcode: 0, payload: p.subarray(2, 5) }),
        wsFrame({ fin: false, opcode: 0, payload: Buffer.alloc(0) }),
        wsFrame({ opcode: 0, payload: p.subarray(5) }),
      ],
      pongFor(7),
    );
    expect(w.frames.find((f) => f.opcode === 10)?.payload.toString()).toBe('pp'); // the control pong
    expect(replies(w)).toEqual([expect.objectContaining({ op: 'pong', ref: 7 })]);
    expect(w.tcpClosed).toBe(false);
    w.destroy();
  });

  it('a MessagePack map split into many fragments (one byte each) is one message', async () => {
    const p = Buffer.from(mp({ op: 'join', room: 'frag-room', ref: 8 }));
    const frames = [...p].map((b, i) => wsFrame({ fin: i === p.length - 1, opcode: i === 0 ? 2 : 0, payload: Buffer.from([b]) }));
    const w = await run(frames, (x) => replies(x).length > 0);
    expect(replies(w)).toEqual([expect.objectContaining({ op: 'joined', room: 'frag-room', ref: 8 })]);
    w.destroy();
  });

  it('a frame written one byte per TCP segment is reassembled', async () => {
    const w = await run([...wsFrame({ payload: ping(9) })].map((b) => Buffer.from([b])), pongFor(9), 3000, 2);
    expect(replies(w)).toEqual([expect.objectContaining({ op: 'pong', ref: 9 })]);
    w.destroy();
  });

  it('a text message whose UTF-8 is split across fragments is valid text (BAD_FRAME: not binary)', async () => {
    const w = await run([wsFrame({ fin: false, opcode: 1, payload: Buffer.from([0xe2, 0x82]) }), wsFrame({ opcode: 0, payload: Buffer.from([0xac]) })], (x) => replies(x).length > 0);
    expect(replies(w)).toEqual([expect.objectContaining({ op: 'error', code: 'BAD_FRAME', message: 'frames must be binary' })]);
    w.destroy();
  });

  it('a frame of exactly maxFrameBytes is read (and answered as content)', async () => {
    const w = await run([wsFrame({ payload: Buffer.alloc(MAX_FRAME, 0xc0) })], (x) => replies(x).length > 0);
    expect(replies(w)).toEqual([expect.objectContaining({ op: 'error', code: 'BAD_FRAME' })]);
    expect(w.tcpClosed).toBe(false);
    w.destroy();
  });

  // uWS does not send a close frame for these: it drops the TCP connection (a browser reports
  // 1006); the server's close handler sees code 1006 with uWS's reason. See docs/security.md.
  const dropped: Array<[string, () => Buffer[]]> = [
    ['a frame over maxFrameBytes (16385 bytes)', () => [wsFrame({ payload: Buffer.alloc(MAX_FRAME + 1, 0xc0) })]],
    ['fragments adding up to more than maxFrameBytes', () => Array.from({ length: 20 }, (_, i) => wsFrame({ fin: i === 19, opcode: i === 0 ? 2 : 0, payload: Buffer.alloc(1000, 0xc0) }))],
    ['a declared 64-bit length of 2^40', () => [wsFrame({ payload: Buffer.alloc(10), length: 2 ** 40 })]],
    ...[3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf].map((op): [string, () => Buffer[]] => [`reserved opcode ${op}`, () => [wsFrame({ opcode: op, payload: ping(1) })]]),
    ...[4, 2, 1].map((rsv): [string, () => Buffer[]] => [`RSV bits ${rsv} without an extension`, () => [wsFrame({ rsv, payload: ping(1) })]]),
    ['a continuation frame with no message started', () => [wsFrame({ opcode: 0, payload: ping(1) })]],
    ['a continuation frame after a finished message', () => [wsFrame({ payload: ping(1) }), wsFrame({ opcode: 0, payload: ping(2) })]],
    ['a fragmented control frame (ping with FIN=0)', () => [wsFrame({ fin: false, opcode: 9, payload: 'a' })]],
    ['a control frame with a 126-byte payload', () => [wsFrame({ opcode: 9, payload: Buffer.alloc(126) })]],
    ['a text frame that is not valid UTF-8', () => [wsFrame({ opcode: 1, payload: Buffer.from([0xff, 0xfe]) })]],
    ['a fragmented text message that is not valid UTF-8', () => [wsFrame({ fin: false, opcode: 1, payload: Buffer.from([0xe2]) }), wsFrame({ opcode: 0, payload: Buffer.from([0x41]) })]],
  ];
  for (const [what, make] of dropped) {
    it(`dropped without a close frame (1006): ${what}`, async () => {
      const w = await run(make(), () => false, 3000);
      expect(w.tcpClosed, 'TCP connection closed by the server').toBe(true);
      expect(w.closeFrame()).toBeUndefined();
      expect(w.closeCode()).toBe(1006);
      expect(replies(w).filter((m) => m.op !== 'pong')).toEqual([]);
      w.destroy();
    });
  }

  // Close frames that break the rules are answered with a close frame without a code (1005).
  const badClose: Array<[string, Buffer]> = [
    ['a 1-byte close payload', Buffer.from([3])],
    ['close code 999', Buffer.from([0x03, 0xe7])],
    ['the reserved close code 1005', Buffer.from([0x03, 0xed])],
    ['a close reason that is not UTF-8', Buffer.from([0x03, 0xe8, 0xff, 0xfe])],
  ];
  for (const [what, payload] of badClose) {
    it(`a close frame with ${what} is answered with an empty close frame`, async () => {
      const w = await run([wsFrame({ opcode: 8, payload })], () => false, 3000);
      expect(w.closeFrame()).toEqual({ code: 1005, reason: '' });
      expect(w.tcpClosed).toBe(true);
      w.destroy();
    });
  }

  it('a well-formed close (1000) is echoed', async () => {
    const w = await run([wsFrame({ opcode: 8, payload: Buffer.from([0x03, 0xe8, 0x6f, 0x6b]) })], () => false, 3000);
    expect(w.closeFrame()).toEqual({ code: 1000, reason: 'ok' });
    w.destroy();
  });

  it('lenient, not fatal: unsolicited pongs are ignored', async () => {
    const w = await run([wsFrame({ opcode: 10, payload: 'x' }), wsFrame({ payload: ping(11) })], pongFor(11));
    expect(replies(w)).toEqual([expect.objectContaining({ op: 'pong', ref: 11 })]);
    w.destroy();
  });

  it('lenient, not fatal: a new data frame inside a fragmented message is appended to it (no RFC 6455 close)', async () => {
    const w = await run([wsFrame({ fin: false, payload: Buffer.from([0x81]) }), wsFrame({ payload: ping(12) })], (x) => replies(x).length > 0);
    expect(replies(w)).toEqual([expect.objectContaining({ op: 'error', code: 'BAD_FRAME' })]);
    expect(w.tcpClosed).toBe(false);
    w.destroy();
  });

  it('lenient, not fatal: an unmasked client frame is not refused; uWS reads a mask key anyway and waits for bytes', async () => {
    const w = await run([wsFrame({ payload: ping(13), mask: false })], () => false, 400);
    expect(replies(w)).toEqual([]); // no reply: uWS is still waiting for the "rest" of the frame
    expect(w.tcpClosed).toBe(false);
    w.destroy();
  });

  it('random framing mutations: only documented outcomes, and the worker keeps serving', async () => {
    const seed = fuzzSeed(0x5eed03);
    const rng = new Rng(seed);
    const cases = fuzzCount(200);
    const failures: string[] = [];
    const outcomes = new Map<string, number>();
    // All cases are generated first, so the seed alone decides them (not the scheduling).
    const plans = Array.from({ length: cases }, (_, i) => {
      const chunks: Buffer[] = [];
      let sentClose = false;
      const n = rng.range(1, 4);
      for (let k = 0; k < n; k++) {
        const opcode = rng.chance(0.6) ? rng.pick([0, 1, 2]) : rng.int(16);
        if (opcode === 8) sentClose = true;
        const payload = rng.chance(0.7) ? Buffer.from(ping(i)) : Buffer.from(rng.bytes(rng.len(300)));
        let f = wsFrame({ fin: rng.chance(0.7), rsv: rng.chance(0.1) ? rng.int(8) : 0, opcode, mask: rng.chance(0.9), payload, length: rng.chance(0.05) ? rng.int(70000) : undefined });
        if (rng.chance(0.2)) f = Buffer.concat([f.subarray(0, rng.int(f.length)), Buffer.from(rng.bytes(rng.int(8)))]);
        chunks.push(f);
      }
      chunks.push(wsFrame({ payload: ping(100_000 + i) }));
      return { i, chunks, sentClose };
    });
    await pool(plans, 16, async ({ i, chunks, sentClose }) => {
      let w: RawWs;
      try {
        w = await run(chunks, pongFor(100_000 + i), 250);
      } catch (err) {
        failures.push(`case ${i}: could not open: ${(err as Error).message}`);
        return;
      }
      const msgs = replies(w);
      for (const m of msgs) {
        if (m.op === 'error' && typeof m.code === 'string' && ['BAD_FRAME', 'UNKNOWN_OP', 'BAD_ROOM', 'TOO_LARGE', 'FORBIDDEN', 'NOT_JOINED', 'RATE_LIMITED'].includes(m.code)) continue;
        if (m.op === 'pong' || m.op === 'joined' || m.op === 'left' || m.op === 'ack') continue;
        failures.push(`case ${i}: unexpected message ${JSON.stringify(m)}`);
      }
      const cf = w.closeFrame();
      if (cf && !sentClose && ![1005, 4008].includes(cf.code)) failures.push(`case ${i}: close frame ${cf.code}`);
      const outcome = w.tcpClosed ? (cf ? `closed with close frame` : 'dropped (1006)') : pongFor(100_000 + i)(w) ? 'in sync' : 'open, out of sync';
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      w.destroy();
    });
    expect(failures, `seed ${seed}`).toEqual([]);
    expect(outcomes.get('dropped (1006)') ?? 0).toBeGreaterThan(0);
    expect(outcomes.get('in sync') ?? 0).toBeGreaterThan(0);
    await freshClientWorks(node);
    console.log(`framing fuzz seed ${seed}: ${cases} cases: ${JSON.stringify(Object.fromEntries(outcomes))}`);
  }, fuzzTimeout(60_000));
});
