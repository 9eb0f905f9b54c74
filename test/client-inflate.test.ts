// z frames: deflate-raw MessagePack, decompressed with node:zlib in Node and with
// DecompressionStream in browsers; frames stay in order even when inflating is async.
import { encode } from '@msgpack/msgpack';
import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { connect, type Batch } from '../src/client/index.js';
import { defaultInflate, inflateWithStream, loadZlib } from '../src/client/inflate.js';
import { FakeClock, FakeTransport, flush, recordEvents } from '../src/client/testing.js';

/** Polls `cond` on real timers (bounded), for work that settles off the microtask queue. */
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
}

const z = (frame: Record<string, unknown>) => ({ op: 'z', data: deflateRawSync(encode(frame)) });
const batch = (from: number, body = 'x') => ({ op: 'batch', room: 'r1', epoch: 'e', from, to: from, msgs: [{ u: 'a', k: 'chat', b: body, t: 1 }] });

describe('inflate', () => {
  it('DecompressionStream and node:zlib give the same bytes', async () => {
    const plain = encode({ op: 'batch', msgs: Array.from({ length: 200 }, (_, i) => ({ b: `message ${i}` })) });
    const packed = deflateRawSync(plain);
    expect(await inflateWithStream(packed)).toEqual(new Uint8Array(plain));
    await loadZlib();
    expect(new Uint8Array(await defaultInflate(packed))).toEqual(new Uint8Array(plain));
  });
});

describe.each([
  ['node:zlib (sync)', undefined],
  ['DecompressionStream (async, as in browsers)', inflateWithStream],
] as const)('z frames with %s', (_name, inflate) => {
  it('asks for compression and decodes z frames in order with plain ones', async () => {
    const t = new FakeTransport();
    const rc = connect({ url: 'ws://h/ws', transport: t.factory, clock: new FakeClock(), compress: true, joinInUrl: false, ...(inflate ? { inflate } : {}) });
    const { of } = recordEvents(rc);
    await flush();
    expect(t.last.query.get('compress')).toBe('deflate');
    const s = t.last;
    s.accept();
    const j = rc.join('r1');
    await flush();
    s.push(z({ op: 'joined', ref: s.last('join').ref, room: 'r1', epoch: 'e', seq: 0, members: 1 }));
    s.push(z(batch(1, 'big '.repeat(400))));
    s.push(batch(2)); // plain, right behind a z frame that may still be inflating
    s.push(z(batch(3)));
    await j;
    // DecompressionStream works off the microtask queue: wait for the result, not a fixed number of turns.
    await until(() => of<Batch>('batch').length >= 3);
    expect(of<Batch>('batch').map((b) => b.from)).toEqual([1, 2, 3]);
    expect(of<Batch>('batch')[0]!.msgs[0]!.b).toBe('big '.repeat(400));
    s.push({ op: 'z', data: new Uint8Array([1, 2, 3, 4]) }); // corrupt
    s.push(batch(4));
    await until(() => of<Batch>('batch').length >= 4);
    expect(of<{ code: string }>('error').map((e) => e.code)).toEqual(['PROTOCOL']);
    expect(of<Batch>('batch').map((b) => b.from)).toEqual([1, 2, 3, 4]);
    await rc.close();
  });
});
