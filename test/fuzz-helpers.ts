// Helpers for the hardening suite (test/hardening-*.test.ts): a seeded PRNG and generators of
// hostile MessagePack, JSON and WebSocket framing; a raw WebSocket client over a bare TCP
// socket (any opcode, mask, RSV bit or length); raw HTTP; an oracle for server frames; and
// process probes. Nothing here reaches into the engine: everything talks to real sockets.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import net from 'node:net';
import { decode, encode, ExtData } from '@msgpack/msgpack';
import WebSocket from 'ws';
import { metricValue } from './helpers.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- contract constants (PROTOCOL §5, docs/protocol.md §8), written out rather than imported
// from src so that the tests check the code against the documents, not against itself ----

/** Every error code a WebSocket client can receive (PROTOCOL §5). */
export const WS_ERROR_CODES = new Set([
  'BAD_FRAME', 'UNKNOWN_OP', 'BAD_ROOM', 'TOO_LARGE', 'RATE_LIMITED', 'NOT_JOINED', 'FORBIDDEN',
  'MUTED', 'KICKED', 'TOO_MANY_ROOMS', 'REJECTED', 'UNAVAILABLE',
]);
/** Error codes that count as bad frames towards badFrameLimit (close 4008). */
export const BAD_FRAME_CODES = new Set(['BAD_FRAME', 'UNKNOWN_OP']);
/** HTTP error codes (PROTOCOL §6 + docs/protocol.md §8 "HTTP") with their statuses. */
export const HTTP_ERRORS: Record<string, number[]> = {
  UNAUTHORIZED: [401],
  BAD_REQUEST: [400],
  NOT_FOUND: [404],
  BAD_ROOM: [400],
  TOO_LARGE: [413],
  RATE_LIMITED: [429],
  UNAVAILABLE: [503],
};
/** Statuses the fuzzed API may answer (503 only when the bus is down, which it is not here). */
export const HTTP_FUZZ_STATUSES = new Set([200, 202, 400, 401, 404, 413, 429]);
/** Replies to a client op (each client op gets exactly one of these). */
export const REPLY_OPS = new Set(['joined', 'left', 'ack', 'error', 'pong']);
/** Frames the server pushes on its own. */
export const PUSH_OPS = new Set(['welcome', 'batch', 'members', 'kicked', 'muted', 'bye', 'z']);

// ---- seeded PRNG ----

/** mulberry32: small, fast, good enough for fuzzing, and reproducible from one 32-bit seed. */
export class Rng {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
  /** A length skewed towards small values, sometimes large. */
  len(max: number): number {
    const r = this.next();
    if (r < 0.6) return this.int(Math.min(max, 16) + 1);
    if (r < 0.9) return this.int(Math.min(max, 300) + 1);
    return this.int(max + 1);
  }
}

/** The seed for this run: HARDENING_FUZZ_SEED, else a fixed one so CI is deterministic. */
export function fuzzSeed(fallback: number): number {
  const s = process.env.HARDENING_FUZZ_SEED;
  return s === undefined || s === '' ? fallback : Number(s) >>> 0;
}

/** A fuzz size: HARDENING_FUZZ_SCALE multiplies the CI default (the long run uses it). */
export function fuzzCount(ciDefault: number): number {
  const scale = Number(process.env.HARDENING_FUZZ_SCALE ?? '1');
  return Math.max(1, Math.round(ciDefault * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
}

/** A test timeout that grows with HARDENING_FUZZ_SCALE. */
export function fuzzTimeout(ciMs: number): number {
  const scale = Number(process.env.HARDENING_FUZZ_SCALE ?? '1');
  return Math.round(ciMs * Math.max(1, Number.isFinite(scale) ? scale : 1));
}

// ---- hostile values ----

const STRINGS = [
  '', 'a', 'ping', 'join', 'send', 'chat', 'like', 'kick', 'mute', 'leave', 'op', 'room', 'lobby', 'gift', 'system',
  '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '\u0000', '\ud800', '\uffff', 'é', '😀',
  'x'.repeat(64), 'x'.repeat(65), 'a b', '../', '%00', '${x}', '<script>', 'null', 'undefined', 'NaN', '-1', '1e309',
];

function randomString(rng: Rng, maxLen: number): string {
  switch (rng.int(5)) {
    case 0:
      return rng.pick(STRINGS);
    case 1: {
      let s = '';
      const n = rng.len(maxLen);
      for (let i = 0; i < n; i++) s += String.fromCharCode(32 + rng.int(95));
      return s;
    }
    case 2: {
      let s = '';
      const n = rng.len(Math.min(maxLen, 200));
      for (let i = 0; i < n; i++) s += String.fromCodePoint(rng.chance(0.1) ? 0x1f600 + rng.int(50) : rng.int(0xd7ff));
      return s;
    }
    case 3:
      return 'x'.repeat(rng.len(maxLen));
    default:
      return rng.pick(['lobby', 'room-1', 'r', 'vip-1']) + (rng.chance(0.5) ? '' : String(rng.int(10)));
  }
}

const NUMBERS = [0, 1, -1, 127, 128, 255, 256, -32, -33, 65535, 65536, 2 ** 31, 2 ** 32, -(2 ** 31), 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 2 ** 64, 1.5, -0, NaN, Infinity, -Infinity, 1e308, 5e-324];

/** Any MessagePack value: scalars, strings, bins, exts, bigints, arrays, maps (nested). */
export function randomValue(rng: Rng, depth = 0, maxLen = 2000): unknown {
  const r = rng.int(depth > 4 ? 9 : 12);
  switch (r) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick(NUMBERS);
    case 3:
      return rng.int(2 ** 31) - rng.int(2 ** 31);
    case 4:
      return rng.next() * 10 ** rng.int(20);
    case 5:
    case 6:
      return randomString(rng, maxLen);
    case 7:
      return rng.bytes(rng.len(Math.min(maxLen, 600)));
    case 8:
      return rng.chance(0.5) ? new ExtData(rng.range(-128, 127), rng.bytes(rng.len(64))) : BigInt.asUintN(64, BigInt(rng.int(2 ** 31)) << BigInt(rng.int(33)));
    case 9:
    case 10: {
      const n = rng.len(depth > 2 ? 4 : 20);
      return Array.from({ length: n }, () => randomValue(rng, depth + 1, maxLen));
    }
    default: {
      const m: Record<string, unknown> = {};
      const n = rng.len(depth > 2 ? 4 : 12);
      // defineProperty, so that keys like __proto__ become own keys (and are encoded).
      for (let i = 0; i < n; i++) Object.defineProperty(m, randomString(rng, 40), { value: randomValue(rng, depth + 1, maxLen), enumerable: true, writable: true, configurable: true });
      return m;
    }
  }
}

// ---- MessagePack frames ----

const msgpackEncoder = { ignoreUndefined: true, useBigInt64: true } as const;
export const mp = (v: unknown): Uint8Array => encode(v, msgpackEncoder);

/** Valid client ops (all shapes of PROTOCOL §3), with a few rooms so some are joined. */
export function validOp(rng: Rng, rooms: readonly string[]): Record<string, unknown> {
  const room = rng.pick(rooms);
  const ref = rng.int(1_000_000);
  switch (rng.int(8)) {
    case 0:
      return { op: 'ping', ref };
    case 1:
      return { op: 'join', room, ref };
    case 2:
      return { op: 'join', room, since: rng.int(5), ref, ...(rng.chance(0.5) ? { epoch: 'e' } : {}) };
    case 3:
      return { op: 'leave', room, ref };
    case 4:
      return { op: 'send', room, kind: 'chat', body: randomString(rng, 300) || 'x', ref };
    case 5:
      return { op: 'send', room, kind: 'like', ref };
    case 6:
      return { op: 'kick', room, uid: 'victim', ref, ...(rng.chance(0.5) ? { seconds: rng.int(100), reason: 'r' } : {}) };
    default:
      return { op: 'mute', room, ref, ...(rng.chance(0.5) ? { uid: 'victim' } : {}), seconds: rng.int(100) };
  }
}

const FIELDS = ['op', 'ref', 'room', 'since', 'epoch', 'kind', 'body', 'uid', 'seconds', 'reason'];

/** A valid op with one field (or several) replaced by a value of a random (usually wrong) type. */
export function wrongTypeOp(rng: Rng, rooms: readonly string[]): Record<string, unknown> {
  const o = validOp(rng, rooms);
  const n = rng.chance(0.8) ? 1 : rng.range(2, 4);
  for (let i = 0; i < n; i++) {
    const f = rng.chance(0.7) && Object.keys(o).length > 0 ? rng.pick(Object.keys(o)) : rng.pick(FIELDS);
    if (rng.chance(0.1)) delete o[f];
    else o[f] = randomValue(rng, 2, 400);
  }
  return o;
}

/** Flips, truncates, inserts, deletes or splices bytes of an encoded frame. */
export function mutate(rng: Rng, input: Uint8Array): Uint8Array {
  let b = Buffer.from(input);
  const rounds = rng.range(1, 4);
  for (let i = 0; i < rounds; i++) {
    const at = b.length === 0 ? 0 : rng.int(b.length);
    switch (rng.int(7)) {
      case 0:
        if (b.length) b[at] = b[at]! ^ (1 << rng.int(8));
        break;
      case 1:
        if (b.length) b[at] = rng.pick([0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc4, 0xc7, 0xca, 0xcb, 0xcf, 0xd3, 0xd4, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xff]);
        break;
      case 2:
        b = b.subarray(0, at);
        break;
      case 3:
        b = Buffer.concat([b.subarray(0, at), Buffer.from(rng.bytes(rng.range(1, 8))), b.subarray(at)]);
        break;
      case 4:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + rng.range(1, 8)))]);
        break;
      case 5:
        b = Buffer.concat([b, b.subarray(0, rng.int(b.length + 1))]);
        break;
      default:
        if (b.length > 2) b = Buffer.concat([b.subarray(at), b.subarray(0, at)]);
    }
  }
  return new Uint8Array(b);
}

const be32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const be16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n & 0xffff);
  return b;
};
const fixstr = (s: string) => Buffer.concat([Buffer.from([0xa0 | Buffer.byteLength(s)]), Buffer.from(s)]);

/** Replaces the (unique) bytes of `marker` in the encoding of `obj` with `bytes` (any length). */
export function splice(obj: unknown, marker: string, bytes: Uint8Array): Uint8Array {
  const out = Buffer.from(mp(obj));
  const m = Buffer.from(marker);
  const at = out.indexOf(m);
  if (at < 0 || m.length > 31 || bytes.length > 31) throw new Error('splice: marker not found or too long');
  // The marker is a fixstr: rewrite its header for the new length.
  return new Uint8Array(Buffer.concat([out.subarray(0, at - 1), Buffer.from([0xa0 | bytes.length]), bytes, out.subarray(at + m.length)]));
}

const INVALID_UTF8: Uint8Array[] = [
  new Uint8Array([0xff]), new Uint8Array([0xc0, 0xaf]), new Uint8Array([0xed, 0xa0, 0x80]), new Uint8Array([0xe2, 0x82]),
  new Uint8Array([0xf8, 0x88, 0x80, 0x80, 0x80]), new Uint8Array([0x80]), new Uint8Array([0xf4, 0x90, 0x80, 0x80]),
];

/** Hand-made hostile MessagePack: lying lengths, deep nesting, invalid UTF-8, odd keys, exts. */
export function craftedFrame(rng: Rng, maxFrameBytes: number, rooms: readonly string[]): { what: string; bytes: Uint8Array } {
  const room = rng.pick(rooms);
  const bad = rng.pick(INVALID_UTF8);
  const choices: Array<() => { what: string; bytes: Uint8Array }> = [
    () => ({ what: 'str32 claiming 4 GiB', bytes: new Uint8Array(Buffer.concat([Buffer.from([0x81]), fixstr('op'), Buffer.from([0xdb]), be32(0xffffffff), Buffer.from('ping')])) }),
    () => ({ what: 'bin32 claiming 4 GiB', bytes: new Uint8Array(Buffer.concat([Buffer.from([0xc6]), be32(0xffffffff), Buffer.alloc(8)])) }),
    () => ({ what: 'array32 claiming 4G elements', bytes: new Uint8Array(Buffer.concat([Buffer.from([0xdd]), be32(0xffffffff), Buffer.alloc(8, 0xc0)])) }),
    () => ({ what: 'map32 claiming 4G entries', bytes: new Uint8Array(Buffer.concat([Buffer.from([0xdf]), be32(0xffffffff), fixstr('op'), fixstr('ping')])) }),
    () => ({ what: 'map16 of 65535 entries (over maxMapLength)', bytes: new Uint8Array(Buffer.concat([Buffer.from([0xde]), be16(65535), fixstr('op'), fixstr('ping')])) }),
    () => ({ what: 'ext32 claiming 4 GiB', bytes: new Uint8Array(Buffer.concat([Buffer.from([0xc9]), be32(0xffffffff), Buffer.from([1]), Buffer.alloc(4)])) }),
    () => {
      const depth = rng.range(100, maxFrameBytes - 16);
      const inner = Buffer.concat([Buffer.alloc(depth, 0x91), Buffer.from([0xc0])]);
      return { what: `array nested ${depth} deep in op`, bytes: new Uint8Array(Buffer.concat([Buffer.from([0x82]), fixstr('op'), fixstr('ping'), fixstr('x'), inner]).subarray(0, maxFrameBytes)) };
    },
    () => {
      const depth = rng.range(100, Math.floor((maxFrameBytes - 16) / 3));
      const parts: Buffer[] = [Buffer.from([0x82]), fixstr('op'), fixstr('ping'), fixstr('x')];
      for (let i = 0; i < depth; i++) parts.push(Buffer.from([0x81, 0xa1, 0x61]));
      parts.push(Buffer.from([0xc0]));
      return { what: `map nested ${depth} deep`, bytes: new Uint8Array(Buffer.concat(parts)) };
    },
    () => ({ what: 'array of many nils', bytes: new Uint8Array(Buffer.concat([Buffer.from([0xdc]), be16(maxFrameBytes - 8), Buffer.alloc(maxFrameBytes - 8, 0xc0)])) }),
    () => ({ what: 'invalid UTF-8 op', bytes: splice({ op: '@@', ref: 1 }, '@@', bad) }),
    () => ({ what: 'invalid UTF-8 room', bytes: splice({ op: 'join', room: '@@', ref: 2 }, '@@', bad) }),
    () => ({ what: 'invalid UTF-8 body', bytes: splice({ op: 'send', room, kind: 'chat', body: '@@', ref: 3 }, '@@', bad) }),
    () => ({ what: 'invalid UTF-8 kick reason', bytes: splice({ op: 'kick', room, uid: 'v', reason: '@@', ref: 4 }, '@@', bad) }),
    () => ({ what: 'invalid UTF-8 key', bytes: splice({ op: 'ping', '@@': 1 }, '@@', bad) }),
    () => ({ what: 'invalid UTF-8 kind', bytes: splice({ op: 'send', room, kind: '@@', body: 'x' }, '@@', bad) }),
    () => ({ what: '__proto__ key', bytes: new Uint8Array(Buffer.concat([Buffer.from([0x82]), fixstr('__proto__'), Buffer.from([0x81]), fixstr('op'), fixstr('ping'), fixstr('ref'), Buffer.from([0x05])])) }),
    () => ({ what: 'duplicate op keys', bytes: new Uint8Array(Buffer.concat([Buffer.from([0x82]), fixstr('op'), fixstr('ping'), fixstr('op'), fixstr(rng.pick(['join', 'zap', 'send']))])) }),
    () => ({ what: 'integer key', bytes: new Uint8Array(Buffer.concat([Buffer.from([0x82]), fixstr('op'), fixstr('ping'), Buffer.from([0x01, 0x02])])) }),
    () => ({ what: 'bin key', bytes: new Uint8Array(Buffer.concat([Buffer.from([0x81, 0xc4, 0x02]), Buffer.from('op'), fixstr('ping')])) }),
    () => ({ what: 'map key', bytes: new Uint8Array(Buffer.concat([Buffer.from([0x81, 0x80]), fixstr('ping')])) }),
    () => ({ what: 'nil key', bytes: new Uint8Array(Buffer.concat([Buffer.from([0x82]), fixstr('op'), fixstr('ping'), Buffer.from([0xc0, 0xc0])])) }),
    () => ({ what: 'timestamp ext of bad size', bytes: new Uint8Array(Buffer.concat([Buffer.from([0x82]), fixstr('op'), fixstr('ping'), fixstr('ref'), Buffer.from([0xc7, 0x05, 0xff]), Buffer.alloc(5)])) }),
    () => ({ what: 'timestamp ext as ref', bytes: new Uint8Array(Buffer.concat([Buffer.from([0x82]), fixstr('op'), fixstr('ping'), fixstr('ref'), Buffer.from([0xd6, 0xff]), be32(0)])) }),
    () => ({ what: 'uint64 max ref', bytes: new Uint8Array(Buffer.concat([Buffer.from([0x82]), fixstr('op'), fixstr('ping'), fixstr('ref'), Buffer.from([0xcf]), Buffer.alloc(8, 0xff)])) }),
    () => ({ what: 'int64 min since', bytes: new Uint8Array(Buffer.concat([Buffer.from([0x83]), fixstr('op'), fixstr('join'), fixstr('room'), fixstr(room), fixstr('since'), Buffer.from([0xd3, 0x80]), Buffer.alloc(7)])) }),
    () => ({ what: 'NaN since', bytes: new Uint8Array(Buffer.concat([Buffer.from([0x83]), fixstr('op'), fixstr('join'), fixstr('room'), fixstr(room), fixstr('since'), Buffer.from([0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0])])) }),
    () => ({ what: 'float32 seconds', bytes: new Uint8Array(Buffer.concat([Buffer.from([0x84]), fixstr('op'), fixstr('mute'), fixstr('room'), fixstr(room), fixstr('uid'), fixstr('v'), fixstr('seconds'), Buffer.from([0xca, 0x7f, 0x80, 0, 0])])) }),
    () => ({ what: 'map with 65 keys', bytes: mp(Object.fromEntries([['op', 'ping'], ...Array.from({ length: 64 }, (_, i) => [`k${i}`, i])])) }),
    () => ({ what: 'map with 64 keys', bytes: mp(Object.fromEntries([['op', 'ping'], ...Array.from({ length: 63 }, (_, i) => [`k${i}`, i])])) }),
    () => ({ what: 'reserved byte 0xc1 inside a map', bytes: new Uint8Array(Buffer.concat([Buffer.from([0x81]), fixstr('op'), Buffer.from([0xc1])])) }),
    () => ({ what: 'op as huge string', bytes: mp({ op: 'p'.repeat(maxFrameBytes - 16) }) }),
    () => ({ what: 'body over maxBodyBytes in multi-byte chars', bytes: mp({ op: 'send', room, kind: 'chat', body: 'é'.repeat(rng.range(151, 2000)), ref: 9 }) }),
    () => ({ what: 'empty frame', bytes: new Uint8Array(0) }),
    () => ({ what: 'two maps', bytes: new Uint8Array(Buffer.concat([mp({ op: 'ping' }), mp({ op: 'ping' })])) }),
  ];
  return rng.pick(choices)();
}

/** One fuzz frame: the kind of generator and the bytes (binary unless `text`). */
export interface FuzzFrame {
  what: string;
  bytes: Uint8Array | string;
  text?: boolean;
}

/** The mix of the WebSocket fuzz: valid ops, wrong types, random values, mutations, crafted. */
export function fuzzFrame(rng: Rng, maxFrameBytes: number, rooms: readonly string[]): FuzzFrame {
  const clip = (b: Uint8Array) => (b.byteLength > maxFrameBytes ? b.subarray(0, maxFrameBytes) : b);
  const r = rng.int(100);
  if (r < 12) return { what: 'valid op', bytes: mp(validOp(rng, rooms)) };
  if (r < 37) return { what: 'wrong types', bytes: clip(mp(wrongTypeOp(rng, rooms))) };
  if (r < 47) return { what: 'random value', bytes: clip(mp(randomValue(rng))) };
  if (r < 54) return { what: 'random map with op', bytes: clip(mp({ ...(randomValue(rng, 3) as object), op: rng.pick(['ping', 'join', 'send', 'x', '']) })) };
  if (r < 74) return { what: 'mutated valid op', bytes: clip(mutate(rng, mp(validOp(rng, rooms)))) };
  if (r < 80) return { what: 'random bytes', bytes: rng.bytes(rng.len(Math.min(4096, maxFrameBytes))) };
  if (r < 84) {
    const s = Buffer.from(mp(validOp(rng, rooms))).toString('latin1');
    return { what: 'text frame', bytes: rng.chance(0.5) ? s : JSON.stringify(validOp(rng, rooms)), text: true };
  }
  const c = craftedFrame(rng, maxFrameBytes, rooms);
  return { what: `crafted: ${c.what}`, bytes: clip(c.bytes) };
}

// ---- checking server frames ----

export type Frame = Record<string, unknown> & { op: string };

/** Problems with one decoded server frame (empty when it is a well-formed contract frame). */
export function frameProblems(f: unknown): string[] {
  if (typeof f !== 'object' || f === null || Array.isArray(f)) return ['not a map'];
  const m = f as Record<string, unknown>;
  if (typeof m.op !== 'string') return ['op is not a string'];
  const out: string[] = [];
  const isUint = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  switch (m.op) {
    case 'error':
      if (typeof m.code !== 'string' || !WS_ERROR_CODES.has(m.code)) out.push(`undocumented error code ${String(m.code)}`);
      if (typeof m.message !== 'string') out.push('error without message');
      if (m.ref !== undefined && !isUint(m.ref)) out.push('bad ref');
      if ((m.code === 'RATE_LIMITED' || m.code === 'MUTED') && !isUint(m.retryMs)) out.push(`${m.code} without retryMs`);
      break;
    case 'pong':
      if (typeof m.ts !== 'number') out.push('pong without ts');
      break;
    case 'joined':
      if (typeof m.room !== 'string' || typeof m.epoch !== 'string' || !isUint(m.seq) || !isUint(m.members)) out.push('malformed joined');
      break;
    case 'left':
      if (typeof m.room !== 'string') out.push('malformed left');
      break;
    case 'ack':
      if (typeof m.shown !== 'boolean' || (m.shown === true && m.op === 'ack' && m.seq !== undefined && !isUint(m.seq))) out.push('malformed ack');
      break;
    case 'batch':
      if (typeof m.room !== 'string' || !isUint(m.from) || !isUint(m.to) || !Array.isArray(m.msgs)) out.push('malformed batch');
      break;
    default:
      if (!PUSH_OPS.has(m.op)) out.push(`unknown server op ${m.op}`);
  }
  return out;
}

/** A WebSocket client for fuzzing: keeps decoded frames and every oddity it saw. */
/**
 * A `like` sent without a ref: accepted, it gets no reply at all (docs/protocol.md §8, likes
 * without ref are not acked); refused, it gets an error. Either is documented.
 */
export function quietLike(bytes: Uint8Array | string, text: boolean | undefined): boolean {
  if (text || typeof bytes === 'string') return false;
  let v: unknown;
  try {
    v = decode(bytes);
  } catch {
    return false;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  return o.op === 'send' && o.kind === 'like' && (o.ref === undefined || o.ref === null);
}

let fences = 0;

/**
 * Sends a ping after a frame that may stay unanswered and waits for its pong: replies before
 * it belong to the frame. Resolves true when the frame itself got no reply (its only reply
 * is the fence's pong).
 */
export async function fenced(c: FuzzClient, before: number): Promise<boolean> {
  const ref = 2_000_000_000 + ++fences;
  c.send(encode({ op: 'ping', ref }));
  await c.until(() => c.replies().some((r) => r.op === 'pong' && r.ref === ref) || c.closeCode !== undefined, 5000);
  const first = c.replies()[before];
  return first?.op === 'pong' && first.ref === ref;
}

export class FuzzClient {
  readonly frames: Frame[] = [];
  readonly problems: string[] = [];
  closeCode: number | undefined;
  closeReason = '';
  readonly closed: Promise<number>;
  private waiters: Array<() => void> = [];

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) this.problems.push('server sent a text frame');
      let f: unknown;
      try {
        f = decode(data);
      } catch {
        this.problems.push('server frame is not MessagePack');
        return;
      }
      for (const p of frameProblems(f)) this.problems.push(`${p}: ${JSON.stringify(f)}`);
      this.frames.push(f as Frame);
      this.wake();
    });
    ws.on('error', (err) => this.problems.push(`client error: ${err.message}`));
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve(code);
        this.wake();
      }),
    );
  }

  static open(url: string): Promise<FuzzClient> {
    const c = new FuzzClient(new WebSocket(url));
    return new Promise((resolve, reject) => {
      c.ws.once('unexpected-response', (_q, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      c.ws.once('error', reject);
      void c.until(() => c.frames.some((f) => f.op === 'welcome'), 10_000).then(() => resolve(c), reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when `pred` holds (checked on every frame and on close); rejects on timeout. */
  async until(pred: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; last frames ${JSON.stringify(this.frames.slice(-3))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  replies(): Frame[] {
    return this.frames.filter((f) => REPLY_OPS.has(f.op));
  }

  send(data: Uint8Array | string, binary = true): void {
    this.ws.send(data, { binary });
  }

  close(): void {
    if (this.closeCode === undefined) this.ws.terminate();
  }
}

// ---- raw WebSocket over TCP ----

export interface WsFrameSpec {
  fin?: boolean;
  rsv?: number;
  opcode?: number;
  mask?: boolean;
  payload?: Uint8Array | string;
  /** Declared payload length (a lie when it differs from the payload). */
  length?: number;
}

/** Encodes one WebSocket frame exactly as asked, including invalid ones. */
export function wsFrame(o: WsFrameSpec = {}): Buffer {
  const payload = Buffer.from(o.payload ?? new Uint8Array(0));
  const len = o.length ?? payload.length;
  let hdr: Buffer;
  if (len < 126) {
    hdr = Buffer.alloc(2);
    hdr[1] = len;
  } else if (len < 65536) {
    hdr = Buffer.alloc(4);
    hdr[1] = 126;
    hdr.writeUInt16BE(len, 2);
  } else {
    hdr = Buffer.alloc(10);
    hdr[1] = 127;
    hdr.writeBigUInt64BE(BigInt(len), 2);
  }
  hdr[0] = ((o.fin ?? true) ? 0x80 : 0) | (((o.rsv ?? 0) & 7) << 4) | ((o.opcode ?? 2) & 0x0f);
  if (o.mask === false) return Buffer.concat([hdr, payload]);
  hdr[1] = hdr[1]! | 0x80;
  const key = randomBytes(4);
  const masked = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) masked[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([hdr, key, masked]);
}

export interface RawWsFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/** A WebSocket client on a bare TCP socket: writes any bytes, parses what the server sends. */
export class RawWs {
  readonly frames: RawWsFrame[] = [];
  /** TCP closed by the server (FIN or RST), or by us. */
  tcpClosed = false;
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: net.Socket) {}

  /** Upgrades `path` (e.g. `/ws?token=…`) and resolves once `welcome` arrived. */
  static async open(port: number, path: string, o: { localAddress?: string } = {}): Promise<RawWs> {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: o.localAddress });
    const raw = new RawWs(socket);
    const key = randomBytes(16).toString('base64');
    let upgraded = false;
    const head = new Promise<void>((resolve, reject) => {
      socket.on('data', (d: Buffer) => {
        raw.buf = Buffer.concat([raw.buf, d]);
        if (!upgraded) {
          const i = raw.buf.indexOf('\r\n\r\n');
          if (i < 0) return;
          const status = raw.buf.subarray(0, i).toString('latin1').split(' ')[1];
          raw.buf = raw.buf.subarray(i + 4);
          upgraded = true;
          if (status !== '101') return reject(new Error(`upgrade answered ${status}`));
          resolve();
        }
        raw.parse();
      });
      socket.on('error', (e) => reject(e));
      socket.on('close', () => {
        raw.tcpClosed = true;
        raw.wake();
        reject(new Error('closed during upgrade'));
      });
    });
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await head;
    await raw.until(() => raw.messages().some((m) => m.op === 'welcome'), 10_000);
    return raw;
  }

  private parse(): void {
    let o = 0;
    const b = this.buf;
    while (b.length - o >= 2) {
      const b0 = b[o]!;
      let len = b[o + 1]! & 0x7f;
      let p = o + 2;
      if (len === 126) {
        if (b.length - o < 4) break;
        len = b.readUInt16BE(o + 2);
        p = o + 4;
      } else if (len === 127) {
        if (b.length - o < 10) break;
        len = Number(b.readBigUInt64BE(o + 2));
        p = o + 10;
      }
      if (b.length < p + len) break;
      this.frames.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload: Buffer.from(b.subarray(p, p + len)) });
      o = p + len;
    }
    this.buf = b.subarray(o);
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  async until(pred: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return true;
  }

  write(...chunks: Buffer[]): void {
    for (const c of chunks) if (!this.socket.destroyed) this.socket.write(c);
  }

  /** Binary data frames decoded as MessagePack (undecodable ones as `{op:'<undecodable>'}`). */
  messages(): Frame[] {
    return this.frames
      .filter((f) => f.opcode === 2 || f.opcode === 1)
      .map((f) => {
        try {
          return decode(f.payload) as Frame;
        } catch {
          return { op: '<undecodable>' };
        }
      });
  }

  /** The server's close frame: its code (1005 when it carried none), or undefined. */
  closeFrame(): { code: number; reason: string } | undefined {
    const f = this.frames.find((x) => x.opcode === 8);
    if (!f) return undefined;
    return f.payload.length >= 2 ? { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString() } : { code: 1005, reason: '' };
  }

  /** What a browser would report: the close frame's code, else 1006 once TCP closed. */
  closeCode(): number | undefined {
    return this.closeFrame()?.code ?? (this.tcpClosed ? 1006 : undefined);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// ---- raw HTTP ----

export interface RawHttpResult {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** ms until the server closed the connection (undefined if it stayed open until timeout). */
  closedAfterMs?: number;
}

/**
 * Sends `request` bytes on a fresh TCP connection and resolves with the first response (or
 * status 0 when the server closed without one or `timeoutMs` passed).
 */
export function rawHttp(port: number, request: string | Buffer, o: { timeoutMs?: number; localAddress?: string } = {}): Promise<RawHttpResult> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect({ port, host: '127.0.0.1', localAddress: o.localAddress });
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      const text = buf.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return resolve({ status: 0, headers: {}, body: text, closedAfterMs: closed ? Date.now() - t0 : undefined });
      const [line, ...hs] = text.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const h of hs) {
        const i = h.indexOf(':');
        if (i > 0) headers[h.slice(0, i).toLowerCase()] = h.slice(i + 1).trim();
      }
      resolve({ status: Number(line!.split(' ')[1]), headers, body: buf.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1')).toString('utf8'), closedAfterMs: closed ? Date.now() - t0 : undefined });
    };
    const timer = setTimeout(() => finish(false), o.timeoutMs ?? 5000);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const text = buf.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (/^HTTP\/1\.1 101 /.test(text)) return finish(false); // upgraded: no body follows
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, end));
      if (cl && buf.length >= Buffer.byteLength(text.slice(0, end + 4), 'latin1') + Number(cl[1])) finish(false);
    });
    s.on('error', () => finish(true));
    s.on('close', () => finish(true));
    s.write(request);
  });
}

/** A WebSocket upgrade request for `path` as raw bytes. */
export function upgradeRequest(path: string, extraHeaders = ''): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`
  );
}

/** Attempts an upgrade; resolves with the HTTP status (101 on success: the socket is closed at once). */
export function upgradeAttempt(port: number, query: string, o: { localAddress?: string; timeoutMs?: number } = {}): Promise<RawHttpResult> {
  return rawHttp(port, upgradeRequest(`/ws?${query}`), o);
}

// ---- tokens by hand ----

export const b64url = (x: string | Buffer): string => Buffer.from(x).toString('base64url');
export const nowSec = (): number => Math.floor(Date.now() / 1000);

/** A JWT with any header and payload, HMAC-signed with `hash` (no signature when secret is undefined). */
export function craftJwt(header: unknown, payload: unknown, secret: string | undefined, hash: 'sha256' | 'sha384' | 'sha512' = 'sha256'): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  if (secret === undefined) return `${input}.`;
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`;
}

// ---- metrics ----

export async function metricsText(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return res.text();
}


export async function metric(port: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricValue(await metricsText(port), name, labels);
}

// ---- process probes ----

export { forceGc, metricValue } from './helpers.js';


export const rssMb = (): number => process.memoryUsage().rss / 1048576;

/** Runs `tasks` with at most `limit` in flight. */
export async function pool<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  });
  await Promise.all(workers);
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

// ---- slow readers in a helper process ----

export function hasPython(): boolean {
  try {
    return spawnSync('python3', ['-c', 'import socket; socket.TCP_MAXSEG'], { stdio: 'ignore', timeout: 5000 }).status === 0;
  } catch {
    return false;
  }
}

// Slow readers live in a python3 process because Node cannot shrink a socket's buffers: a
// paused Node socket on loopback soaks up ~4 MB in the kernel before the server sees any
// backpressure, so a thousand of them would need gigabytes of traffic. A receive buffer of
// 4 KB and an MSS of 536 cut that to ~50 KB per socket, as for a slow mobile client.
const SLOW_READERS_PY = String.raw`
import json, socket, sys
cfg = json.loads(sys.stdin.readline())
socks = []
for tok in cfg['tokens']:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    s.settimeout(20)
    s.connect(('127.0.0.1', cfg['port']))
    s.sendall(('GET /ws?token=%s&room=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
               'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n' % (tok, cfg['room'])).encode())
    buf = b''
    while b'joined' not in buf:
        d = s.recv(4096)
        if not d:
            print('error closed during join', flush=True)
            sys.exit(1)
        buf += d
    if not buf.startswith(b'HTTP/1.1 101'):
        print('error ' + buf[:40].decode('latin1'), flush=True)
        sys.exit(1)
    socks.append(s)
print('ready %d' % len(socks), flush=True)
sys.stdin.readline()
for s in socks:
    s.close()
print('closed', flush=True)
`;

/** A process holding `tokens.length` members of `room` that stopped reading after `joined`. */
export class SlowReaders {
  private lines: string[] = [];
  private waiters: Array<() => void> = [];
  private constructor(private readonly proc: ChildProcess) {
    let buf = '';
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
        for (const w of this.waiters.splice(0)) w();
      }
    });
    proc.stderr!.on('data', (d: Buffer) => this.lines.push(`stderr ${d.toString()}`));
    proc.on('exit', () => {
      this.lines.push('exit');
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async start(port: number, room: string, tokens: readonly string[], timeoutMs = 60_000): Promise<SlowReaders> {
    const proc = spawn('python3', ['-c', SLOW_READERS_PY], { stdio: ['pipe', 'pipe', 'pipe'] });
    const r = new SlowReaders(proc);
    proc.stdin!.write(JSON.stringify({ port, room, tokens }) + '\n');
    await r.line(/^(ready|error|exit|stderr)/, timeoutMs).then((l) => {
      if (!l.startsWith('ready')) throw new Error(`slow readers failed: ${r.lines.join(' | ')}`);
    });
    return r;
  }

  private async line(re: RegExp, timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find((l) => re.test(l));
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`slow readers: timed out; output ${this.lines.join(' | ')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    if (this.proc.exitCode === null) {
      this.proc.stdin!.write('close\n');
      await this.line(/^(closed|exit)/, 20_000).catch(() => undefined);
      this.proc.kill();
    }
  }
}
