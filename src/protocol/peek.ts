// What an inbound frame is, read from its bytes without decoding them: used to shed chat and
// likes cheaply while the worker is overloaded. Reads only a flat top-level map whose values
// are strings, unsigned ints, nil or booleans (what clients send); anything else is left to
// the full decode and validation, which judge every frame that is not shed.

import { MAX_LIKE_COUNT } from './ops.js';

export interface SendPeek {
  kind: 'chat' | 'like';
  ref: number | undefined;
  /** Likes in the frame: a like's `count`, 1 when absent or out of range (a shed frame is not validated). */
  count: number;
}

const OP = [0x6f, 0x70]; // "op"
const KIND = [0x6b, 0x69, 0x6e, 0x64]; // "kind"
const REF = [0x72, 0x65, 0x66]; // "ref"
const COUNT = [0x63, 0x6f, 0x75, 0x6e, 0x74]; // "count"
const SEND = [0x73, 0x65, 0x6e, 0x64];
const CHAT = [0x63, 0x68, 0x61, 0x74];
const LIKE = [0x6c, 0x69, 0x6b, 0x65];

function same(b: Uint8Array, at: number, len: number, lit: readonly number[]): boolean {
  if (len !== lit.length) return false;
  for (let i = 0; i < len; i++) if (b[at + i] !== lit[i]) return false;
  return true;
}

/** A chat or like `send` frame's kind and ref; undefined for anything else. */
export function peekSend(b: Uint8Array): SendPeek | undefined {
  const u8 = (i: number) => b[i] ?? -1;
  const h = u8(0);
  let n: number;
  let p = 1;
  if (h >= 0x80 && h <= 0x8f) n = h & 0x0f;
  else if (h === 0xde) {
    n = (u8(1) << 8) | u8(2);
    p = 3;
  } else return undefined;
  let op = false;
  let kind: SendPeek['kind'] | undefined;
  let ref: number | undefined;
  let count = 1;
  for (let i = 0; i < n; i++) {
    const kh = u8(p);
    if ((kh & 0xe0) !== 0xa0) return undefined; // keys are short strings
    const k = p + 1;
    const klen = kh & 0x1f;
    p = k + klen;
    const vh = u8(p);
    let vlen = 0;
    let v = p + 1;
    let num: number | undefined;
    if (vh >= 0xa0 && vh <= 0xbf) vlen = vh & 0x1f;
    else if (vh === 0xd9) (vlen = u8(p + 1)), (v = p + 2);
    else if (vh === 0xda) (vlen = (u8(p + 1) << 8) | u8(p + 2)), (v = p + 3);
    else if (vh >= 0 && vh <= 0x7f) num = vh;
    else if (vh === 0xcc) (num = u8(p + 1)), (v = p + 2);
    else if (vh === 0xcd) (num = (u8(p + 1) << 8) | u8(p + 2)), (v = p + 3);
    else if (vh === 0xce) (num = ((u8(p + 1) << 24) | (u8(p + 2) << 16) | (u8(p + 3) << 8) | u8(p + 4)) >>> 0), (v = p + 5);
    else if (vh === 0xc0 || vh === 0xc2 || vh === 0xc3) num = -1;
    else return undefined;
    p = v + vlen;
    if (p > b.byteLength) return undefined;
    if (same(b, k, klen, OP)) {
      if (num !== undefined || !same(b, v, vlen, SEND)) return undefined;
      op = true;
    } else if (same(b, k, klen, KIND)) {
      kind = num === undefined && same(b, v, vlen, CHAT) ? 'chat' : num === undefined && same(b, v, vlen, LIKE) ? 'like' : undefined;
      if (!kind) return undefined;
    } else if (same(b, k, klen, REF) && num !== undefined && num >= 0) ref = num;
    else if (same(b, k, klen, COUNT) && num !== undefined && num >= 1 && num <= MAX_LIKE_COUNT) count = num;
  }
  return op && kind && p === b.byteLength ? { kind, ref, count: kind === 'like' ? count : 1 } : undefined;
}
