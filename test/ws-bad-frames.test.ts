// Hostile input never crashes or wedges the worker (PROTOCOL §1): oversized frames close the
// socket, malformed ones get BAD_FRAME, a connection that keeps sending them is closed with
// 4008, and fresh clients are served normally afterwards.
import { encode } from '@msgpack/msgpack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { NO_FRAME_BUDGET, sleep, startTestNode, type Client, type Frame } from './helpers.js';
import { closeAll, member, nextRef, request, uniq, user, waitUntil } from './ws-helpers.js';

/** A small deterministic PRNG (mulberry32), so a failing fuzz case can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const errors = (c: Client) => c.frames.filter((f) => f.op === 'error');

/** A full round trip on a brand-new connection: the worker is alive and well. */
async function healthy(node: RoomcastNode): Promise<void> {
  const room = uniq('alive');
  const { c: a } = await member(node, uniq('alive-a'), room);
  const { c: b } = await member(node, uniq('alive-b'), room);
  expect(await request(a, { op: 'send', room, kind: 'chat', body: 'still alive' })).toMatchObject({ op: 'ack', shown: true });
  await b.waitFor((f) => f.op === 'batch' && (f.msgs as Array<{ b: string }>)[0]?.b === 'still alive');
  expect(await request(b, { op: 'ping' })).toMatchObject({ op: 'pong' });
  const res = await fetch(`http://127.0.0.1:${node.port}/healthz`);
  expect(res.status).toBe(200);
  await closeAll(a, b);
}

describe('bad frames (default limits)', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20 }); // maxFrameBytes 16384, badFrameLimit 10
  });
  afterAll(() => node.stop());

  it('a frame over maxFrameBytes closes that socket; the worker keeps serving', async () => {
    const c = await user(node, uniq('huge'));
    const bystander = await user(node, uniq('bystander'));
    c.sendRaw(encode({ op: 'ping', pad: 'p'.repeat(20_000) }));
    const code = await Promise.race([c.closed, sleep(3000).then(() => -1)]);
    expect(code, 'the socket was closed').not.toBe(-1);
    expect(bystander.closeCode).toBeUndefined();
    expect(await request(bystander, { op: 'ping' })).toMatchObject({ op: 'pong' });
    // A 1 MB frame too.
    const d = await user(node, uniq('huger'));
    d.sendRaw(new Uint8Array(1 << 20));
    expect(await Promise.race([d.closed, sleep(3000).then(() => -1)])).not.toBe(-1);
    await healthy(node);
    await closeAll(bystander);
  });

  it('a frame of exactly maxFrameBytes is processed', async () => {
    const c = await user(node, uniq('exact'));
    const ref = nextRef();
    const base = encode({ op: 'ping', ref, pad: '' }).byteLength;
    // str16 header (3 bytes) instead of the fixstr header (1 byte) once the pad is long.
    const frame = encode({ op: 'ping', ref, pad: 'p'.repeat(16_384 - base - 2) });
    expect(frame.byteLength).toBe(16_384);
    c.sendRaw(frame);
    expect(await c.reply(ref)).toMatchObject({ op: 'pong', ref });
    await closeAll(c);
  });

  it('deep nesting (10k nested arrays or maps in 16 KB) is BAD_FRAME, not a crash', async () => {
    const c = await user(node, uniq('deep'));
    const arrays = new Uint8Array(10_001).fill(0x91);
    arrays[10_000] = 0xc0; // [[[[...nil...]]]]
    expect((await errorAfter(c, arrays)).code).toBe('BAD_FRAME');
    // {op: [[[[...]]]]}
    const opNested = Buffer.concat([Buffer.from([0x81, 0xa2, 0x6f, 0x70]), Buffer.from(arrays)]);
    expect((await errorAfter(c, opNested)).code).toBe('BAD_FRAME');
    // {a: {a: {a: ...}}} 5000 deep
    const maps = Buffer.concat([Buffer.alloc(5000 * 3, 0), Buffer.from([0xc0])]);
    for (let i = 0; i < 5000; i++) maps.set([0x81, 0xa1, 0x61], i * 3);
    expect((await errorAfter(c, maps)).code).toBe('BAD_FRAME');
    // A valid ping carrying a deep extra field: answered either way, never a crash.
    const ref = nextRef();
    const ping = Buffer.from(encode({ op: 'ping', ref })); // fixmap of 2 entries
    ping[0] = 0x83; // one more entry: "x": [[[[...]]]]
    c.sendRaw(Buffer.concat([ping, Buffer.from([0xa1, 0x78]), Buffer.from(arrays)]));
    expect(await c.reply(ref)).toMatchObject({ ref });
    expect(await request(c, { op: 'ping' })).toMatchObject({ op: 'pong' });
    await closeAll(c);
    await healthy(node);
  });

  it('lengths that promise more than the frame holds are BAD_FRAME', async () => {
    const c = await user(node, uniq('lengths'));
    const cases = [
      [0xdd, 0xff, 0xff, 0xff, 0xff], // array32 of 4G items
      [0xdf, 0xff, 0xff, 0xff, 0xff], // map32 of 4G entries
      [0xdb, 0x7f, 0xff, 0xff, 0xff], // str32 of 2 GB
      [0xc6, 0x7f, 0xff, 0xff, 0xff], // bin32 of 2 GB
      [0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01], // ext32 of 2 GB
      [0x81, 0xa2, 0x6f, 0x70, 0xdb, 0x00, 0x10, 0x00, 0x00], // {op: str32 of 1 MB} (truncated)
    ];
    for (const bytes of cases) expect((await errorAfter(c, new Uint8Array(bytes))).code).toBe('BAD_FRAME');
    await closeAll(c);
  });

  it('a connection that keeps sending bad frames is closed with 4008 (after more than 10)', async () => {
    const c = await user(node, uniq('bad'));
    const bad: Array<Uint8Array | string> = [
      'text',
      new Uint8Array([0x83]),
      encode([1, 2, 3]),
      encode({ op: 'nope' }),
      encode({ room: 'x' }),
      new Uint8Array([0xc1]),
      encode({ op: 'join', room: 5 }),
      encode(7),
      encode({ op: 'send', room: 'r', kind: 'chat', body: 1 }),
      encode({ op: 'dance' }),
    ];
    for (const b of bad) c.sendRaw(b, typeof b !== 'string');
    await waitUntil(() => errors(c).length === 10, 3000, '10 errors');
    // Ten bad frames are tolerated: still open and answering.
    expect(await request(c, { op: 'ping' })).toMatchObject({ op: 'pong' });
    expect(c.closeCode).toBeUndefined();
    c.sendRaw(encode({ op: 'eleventh' }));
    expect(await Promise.race([c.closed, sleep(3000).then(() => -1)])).toBe(4008);
    expect(errors(c)).toHaveLength(11);
    await healthy(node);
  });

  it('errors that are not bad frames (BAD_ROOM, NOT_JOINED, ...) do not count towards 4008', async () => {
    const c = await user(node, uniq('notbad'));
    for (let i = 0; i < 15; i++) await request(c, { op: 'leave', room: uniq('never') });
    for (let i = 0; i < 15; i++) await request(c, { op: 'join', room: 'bad room' });
    expect(await request(c, { op: 'ping' })).toMatchObject({ op: 'pong' });
    expect(c.closeCode).toBeUndefined();
    await closeAll(c);
  });
});

/** Sends bytes and resolves with the next error frame. */
async function errorAfter(c: Client, data: Uint8Array): Promise<Frame> {
  const n = errors(c).length;
  c.sendRaw(data);
  await c.waitFor(() => errors(c).length > n);
  return errors(c)[n]!;
}

describe('wrong types everywhere and random input', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ ...NO_FRAME_BUDGET, tickMs: 20, badFrameLimit: 1_000_000, chatRate: 1000, chatBurst: 1000, joinRate: 1000, joinBurst: 1000 });
  });
  afterAll(() => node.stop());

  const weird: unknown[] = [
    0,
    -1,
    2 ** 53 + 2,
    1.5,
    Number.NaN,
    true,
    false,
    [],
    ['a', 1],
    {},
    { nested: { deeper: [1, 2] } },
    new Uint8Array([1, 2, 3]),
    new Uint8Array(0),
    new Date(0), // MessagePack timestamp extension
    'x'.repeat(5000),
    '',
    '💥',
  ];
  const ops: Record<string, string[]> = {
    join: ['room', 'since', 'epoch'],
    leave: ['room'],
    send: ['room', 'kind', 'body'],
    kick: ['room', 'uid', 'seconds', 'reason'],
    mute: ['room', 'uid', 'seconds'],
    ping: [],
  };
  const valid: Record<string, Record<string, unknown>> = {
    join: { room: 'r1' },
    leave: { room: 'r1' },
    send: { room: 'r1', kind: 'chat', body: 'hi' },
    kick: { room: 'r1', uid: 'someone' },
    mute: { room: 'r1', uid: 'someone', seconds: 5 },
    ping: {},
  };

  it('every op with every field of every type gets exactly one reply (ref echoed), and the worker lives', async () => {
    const c = await user(node, uniq('types'), { role: 'moderator' });
    const refs: number[] = [];
    for (const [op, fields] of Object.entries(ops)) {
      for (const field of [...fields, 'op', 'extra']) {
        for (const v of weird) {
          const ref = nextRef();
          refs.push(ref);
          c.send({ ...valid[op], op: field === 'op' ? v : op, ...(field === 'op' ? {} : { [field]: v }), ref });
        }
      }
    }
    await waitUntil(() => refs.every((r) => c.frames.some((f) => f.ref === r)), 10_000, 'a reply to every frame');
    for (const r of refs) expect(c.frames.filter((f) => f.ref === r), `ref ${r}`).toHaveLength(1);
    expect(c.closeCode).toBeUndefined();
    const codes = new Set(c.frames.filter((f) => f.op === 'error').map((f) => f.code));
    for (const code of codes) expect(['BAD_FRAME', 'UNKNOWN_OP', 'BAD_ROOM', 'TOO_LARGE', 'NOT_JOINED', 'FORBIDDEN', 'TOO_MANY_ROOMS', 'RATE_LIMITED']).toContain(code);
    await closeAll(c);
    await healthy(node);
  });

  it('random bytes: one BAD_FRAME each, no crash', async () => {
    const rnd = prng(20261129);
    const c = await user(node, uniq('random'));
    const n = 500;
    for (let i = 0; i < n; i++) {
      const len = 1 + Math.floor(rnd() * 200);
      const bytes = new Uint8Array(len);
      for (let j = 0; j < len; j++) bytes[j] = Math.floor(rnd() * 256);
      bytes[0] = 0xc1; // never a valid start: every frame is bad, whatever follows
      if (i % 2 === 1) bytes[0] = [0xdd, 0xdf, 0xdb, 0xc6, 0xc9, 0x93, 0x9f][i % 7]!; // or a promise the bytes cannot keep
      c.sendRaw(bytes);
    }
    await waitUntil(() => errors(c).length >= n, 10_000, `${n} errors`);
    await sleep(50);
    expect(errors(c)).toHaveLength(n);
    expect(errors(c).every((e) => e.code === 'BAD_FRAME')).toBe(true);
    expect(c.closeCode).toBeUndefined();
    await closeAll(c);
    await healthy(node);
  });

  it('random MessagePack maps with known ops and random fields: exactly one reply each', async () => {
    const rnd = prng(42);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const c = await user(node, uniq('fuzz'), { role: 'moderator' });
    const keys = ['room', 'since', 'epoch', 'kind', 'body', 'uid', 'seconds', 'reason', 'x'];
    const values: unknown[] = [...weird, 'r1', 'r2', 'chat', 'like', 'gift', 0, 3, 'someone'];
    const refs: number[] = [];
    for (let i = 0; i < 400; i++) {
      const m: Record<string, unknown> = { op: pick(Object.keys(ops)) };
      for (const k of keys) if (rnd() < 0.5) m[k] = pick(values);
      const ref = nextRef();
      refs.push(ref);
      c.send({ ...m, ref });
    }
    await waitUntil(() => refs.every((r) => c.frames.some((f) => f.ref === r)), 10_000, 'a reply to every frame');
    for (const r of refs) expect(c.frames.filter((f) => f.ref === r), `ref ${r}`).toHaveLength(1);
    expect(c.closeCode).toBeUndefined();
    await closeAll(c);
    await healthy(node);
  });
});
