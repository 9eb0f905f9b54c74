// Log entries in their travelling form: the messages are encoded once, at append, and stay
// bytes through the bus, delivery and replay (MessagePack arrays concatenate, so batches are
// spliced from them). Stored on Redis as a map {ts, likes, n, t, msgs} whose numbers have fixed
// widths and whose msgs come last: a reader takes the numbers at fixed offsets and msgs as a
// view, decoding nothing. Any MessagePack reader still sees an ordinary map.
import { Decoder, Encoder } from '@msgpack/msgpack';
import type { Msg } from '../protocol/ops.js';
import type { EntryBody, PackedBody } from './bus.js';

const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();

/**
 * Room left before and after an entry's bytes, so a `batch` frame of that one entry (the
 * common case: one entry per room per tick) is written around them instead of copied (batch.ts).
 */
export const HEAD_ROOM = 192;
export const TAIL_ROOM = 16;
const roomy = new WeakSet<Uint8Array>();

/** `bytes` copied into a buffer with head and tail room; the view of them is returned. */
function withRoom(bytes: Uint8Array): Uint8Array {
  const buf = new Uint8Array(HEAD_ROOM + bytes.byteLength + TAIL_ROOM);
  buf.set(bytes, HEAD_ROOM);
  const view = buf.subarray(HEAD_ROOM, HEAD_ROOM + bytes.byteLength);
  roomy.add(view);
  return view;
}

/** Whether `packed` has HEAD_ROOM and TAIL_ROOM free around it in its buffer. */
export function hasRoom(packed: Uint8Array): boolean {
  return roomy.has(packed);
}

export function packEntry(body: EntryBody): PackedBody {
  let oldest = 0;
  for (const m of body.msgs) if (oldest === 0 || m.t < oldest) oldest = m.t;
  return { packed: withRoom(encoder.encodeSharedRef(body.msgs)), count: body.msgs.length, oldest, likes: body.likes, ts: body.ts };
}

/** The messages themselves, for the few readers that need objects (the history API). */
export function unpackMsgs(e: PackedBody): Msg[] {
  return e.packed.byteLength === 0 ? [] : (decoder.decode(e.packed) as Msg[]);
}

/** Bytes of the (minimal) MessagePack array header for `n` items. */
export function arrayHeaderSize(n: number): number {
  return n < 16 ? 1 : n < 0x10000 ? 3 : 5;
}

/** Where a packed array's items start: after its header, whichever width it was written with. */
export function itemsStart(packed: Uint8Array): number {
  const h = packed[0];
  return h === 0xdc ? 3 : h === 0xdd ? 5 : 1;
}

/**
 * The fixed prefix of a stored body: a map of 5, then ts (f64), likes (u32), n (u32), t (f64),
 * then the key "msgs"; `fixed` marks the bytes every body shares (all but the numbers).
 */
const { TEMPLATE, FIXED, at } = (() => {
  const bytes: number[] = [0x85];
  const offsets: Record<string, number> = {};
  const field = (k: string, tag: number, width: number) => {
    bytes.push(0xa0 | k.length, ...Buffer.from(k), tag);
    offsets[k] = bytes.length;
    for (let i = 0; i < width; i++) bytes.push(-1);
  };
  field('ts', 0xcb, 8);
  field('likes', 0xce, 4);
  field('n', 0xce, 4);
  field('t', 0xcb, 8);
  bytes.push(0xa4, ...Buffer.from('msgs'));
  return {
    TEMPLATE: Uint8Array.from(bytes, (b) => Math.max(0, b)),
    FIXED: bytes.map((b) => b >= 0),
    at: { ts: offsets.ts!, likes: offsets.likes!, n: offsets.n!, t: offsets.t! },
  };
})();
const PREFIX = TEMPLATE.byteLength;

/** The stored form of a packed entry (the `d` field of the room's log and partition stream). */
export function storeBody(p: PackedBody): Buffer {
  const out = Buffer.allocUnsafe(PREFIX + p.packed.byteLength);
  out.set(TEMPLATE, 0);
  out.writeDoubleBE(p.ts, at.ts);
  out.writeUInt32BE(p.likes, at.likes);
  out.writeUInt32BE(p.count, at.n);
  out.writeDoubleBE(p.oldest, at.t);
  out.set(p.packed, PREFIX);
  return out;
}

/** A stored body in packed form, without decoding its messages; undefined when it is not one. */
export function loadBody(raw: Buffer): PackedBody | undefined {
  if (raw.byteLength <= PREFIX) return undefined;
  for (let i = 0; i < PREFIX; i++) if (FIXED[i] && raw[i] !== TEMPLATE[i]) return undefined;
  // A copy: a view would keep the whole Redis reply it came in alive for as long as the entry.
  const packed = withRoom(raw.subarray(PREFIX));
  const count = raw.readUInt32BE(at.n);
  const h = packed[0]!;
  const items = h >= 0x90 && h <= 0x9f ? h & 0x0f : h === 0xdc && packed.byteLength >= 3 ? raw.readUInt16BE(PREFIX + 1) : h === 0xdd && packed.byteLength >= 5 ? raw.readUInt32BE(PREFIX + 1) : -1;
  if (items !== count) return undefined;
  return { packed, count, oldest: raw.readDoubleBE(at.t), likes: raw.readUInt32BE(at.likes), ts: raw.readDoubleBE(at.ts) };
}

/** A body stored by an earlier version ({msgs, likes, ts} in any layout), decoded and packed. */
export function loadLegacyBody(raw: Buffer): PackedBody | undefined {
  let v: unknown;
  try {
    v = decoder.decode(raw);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { msgs, likes, ts } = v as Record<string, unknown>;
  if (!Array.isArray(msgs) || typeof likes !== 'number' || typeof ts !== 'number') return undefined;
  return packEntry({ msgs: msgs as Msg[], likes, ts });
}
