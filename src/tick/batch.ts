// `batch` frames spliced from log entries' bytes: the frame's map header, its scalar fields
// and the msgs array header are written here, then each entry's encoded messages (its array
// without the header) are copied in; MessagePack arrays concatenate, so no message is decoded
// or encoded again. The bytes are the ones encodeFrame gives for the same frame as an object.
import { Encoder } from '@msgpack/msgpack';
import type { LogEntry } from '../bus/bus.js';
import { arrayHeaderSize, hasRoom, HEAD_ROOM, itemsStart, TAIL_ROOM } from '../bus/entry.js';

const encoder = new Encoder({ ignoreUndefined: true });
const MSGS_KEY = Uint8Array.from([0xa4, ...Buffer.from('msgs')]);
const LIKES_KEY = Uint8Array.from([0xa5, ...Buffer.from('likes')]);
/** A frame's own bytes (header, seqs, likes) counted per entry against FRAME_MAX_BYTES. */
const ENTRY_OVERHEAD = 16;

/**
 * Bytes of messages one `batch` frame carries at most (live or replayed; a single bigger entry
 * goes alone). A frame past what a socket's kernel buffer takes at once is copied into uWS's
 * per-socket backlog and written out piece by piece, at a cost that grows with the frame: in a
 * room of 5k members fed past what the box writes (~1.6 GB/s), uncapped frames grew to 4 MB
 * while the bytes written per second fell to a third, and delivery collapsed (bench/notes/big-room.md,
 * session 17). Capped, the room's frames keep the box's byte rate and queue what they can't carry.
 */
export const FRAME_MAX_BYTES = 64 * 1024;

/** How many of `entries` from `from` go in one frame: at least one, then while within `maxBytes` and `maxEntries`. */
export function frameLength(entries: readonly LogEntry[], from = 0, maxEntries = Infinity, maxBytes = FRAME_MAX_BYTES): number {
  let n = 0;
  let bytes = 0;
  for (let i = from; i < entries.length && n < maxEntries; i++, n++) {
    bytes += ENTRY_OVERHEAD + entries[i]!.packed.byteLength;
    if (n > 0 && bytes > maxBytes) break;
  }
  return n;
}

/** One `batch` frame covering consecutive log entries, encoded. */
export function encodeBatch(room: string, epoch: string, entries: readonly LogEntry[]): Uint8Array {
  let count = 0;
  let likes = 0;
  let items = 0;
  for (const e of entries) {
    count += e.count;
    likes += e.likes;
    items += e.packed.byteLength - itemsStart(e.packed);
  }
  // {op, room, epoch, from, to} encoded as a map of 5, its header then widened to 6 or 7.
  const head = encoder.encode({ op: 'batch', room, epoch, from: entries[0]!.seq, to: entries[entries.length - 1]!.seq });
  head[0] = likes > 0 ? 0x87 : 0x86;
  const tail = likes > 0 ? encoder.encode(likes) : undefined;
  if (entries.length === 1) {
    const framed = inPlace(entries[0]!, head, tail);
    if (framed) return framed;
  }
  const arrayHeader = arrayHeaderSize(count);
  const out = new Uint8Array(head.byteLength + MSGS_KEY.byteLength + arrayHeader + items + (tail ? LIKES_KEY.byteLength + tail.byteLength : 0));
  out.set(head, 0);
  let p = head.byteLength;
  out.set(MSGS_KEY, p);
  p += MSGS_KEY.byteLength;
  p = writeArrayHeader(out, p, count);
  for (const e of entries) {
    const skip = itemsStart(e.packed);
    out.set(e.packed.subarray(skip), p);
    p += e.packed.byteLength - skip;
  }
  if (tail) {
    out.set(LIKES_KEY, p);
    out.set(tail, p + LIKES_KEY.byteLength);
  }
  return out;
}

/**
 * A one-entry frame written into the room around the entry's own bytes (bus/entry.ts): no
 * copy of the messages. Its header and likes depend only on the entry, so writing it again
 * (another publish, a replay) writes the same bytes. Undefined when the entry has no room,
 * or its array header is not the minimal one a frame's encoding would use.
 */
function inPlace(e: LogEntry, head: Uint8Array, tail: Uint8Array | undefined): Uint8Array | undefined {
  const p = e.packed;
  const before = head.byteLength + MSGS_KEY.byteLength;
  const after = tail ? LIKES_KEY.byteLength + tail.byteLength : 0;
  if (!hasRoom(p) || before > HEAD_ROOM || after > TAIL_ROOM || itemsStart(p) !== arrayHeaderSize(e.count)) return undefined;
  const buf = new Uint8Array(p.buffer, p.byteOffset - before, before + p.byteLength + after);
  buf.set(head, 0);
  buf.set(MSGS_KEY, head.byteLength);
  if (tail) {
    buf.set(LIKES_KEY, before + p.byteLength);
    buf.set(tail, before + p.byteLength + LIKES_KEY.byteLength);
  }
  return buf;
}

function writeArrayHeader(out: Uint8Array, p: number, n: number): number {
  if (n < 16) {
    out[p] = 0x90 | n;
    return p + 1;
  }
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  if (n < 0x10000) {
    out[p] = 0xdc;
    v.setUint16(p + 1, n);
    return p + 3;
  }
  out[p] = 0xdd;
  v.setUint32(p + 1, n);
  return p + 5;
}
