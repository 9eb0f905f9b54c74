// Validation of decoded client frames into typed ops. Hand-written rather than a schema
// library: it runs once per inbound frame on the hot path and must map each failure to the
// exact contract code (BAD_FRAME, UNKNOWN_OP, BAD_ROOM, TOO_LARGE, FORBIDDEN). The frame was
// decoded once with string values left as bytes (codec.ts): a field becomes a string only
// here, with its UTF-8 checked, so a chat body is never decoded twice.
import { WireError } from './errors.js';
import { isUid, MAX_LAST, MAX_LIKE_COUNT, ROOM_RE, UID_MAX, type ClientOp } from './ops.js';

export interface ValidateLimits {
  maxBodyBytes: number;
}

type Raw = Record<string, unknown>;

/** A decoded frame: its map (str and bin values as views of `bytes`) and the frame's bytes. */
interface Frame {
  m: Raw;
  bytes: Uint8Array;
}

function isMap(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * Whether `v` (a view of `frame`) was a MessagePack str rather than a bin: the decoder hands
 * both over as bytes, and the header just before the value tells them apart. Every header
 * ends in the length, so a bin header can never read as a str header of the same length.
 */
function isStr(frame: Uint8Array, v: Uint8Array): boolean {
  if (v.buffer !== frame.buffer) return false;
  const p = v.byteOffset - frame.byteOffset;
  const n = v.byteLength;
  const at = (back: number) => (p - back >= 0 ? frame[p - back]! : -1);
  return (
    (n < 32 && at(1) === (0xa0 | n)) ||
    (n < 0x100 && at(2) === 0xd9 && at(1) === n) ||
    (n < 0x10000 && at(3) === 0xda && at(2) === n >> 8 && at(1) === (n & 0xff)) ||
    (at(5) === 0xdb && ((at(4) << 24) | (at(3) << 16) | (at(2) << 8) | at(1)) >>> 0 === n)
  );
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Short ASCII (ops, kinds, room ids) without a call into the TextDecoder. */
const SHORT = 32;

function text(v: Uint8Array, key: string): string {
  if (v.byteLength <= SHORT) {
    let s = '';
    for (let i = 0; i < v.byteLength; i++) {
      const b = v[i]!;
      if (b > 0x7f) return decodeUtf8(v, key);
      s += String.fromCharCode(b);
    }
    return s;
  }
  return decodeUtf8(v, key);
}

function decodeUtf8(v: Uint8Array, key: string): string {
  try {
    return utf8.decode(v);
  } catch {
    throw new WireError('BAD_FRAME', `${key} is not valid UTF-8`);
  }
}

/** A str field's bytes (undefined when absent or nil). */
function optBytes(f: Frame, key: string): Uint8Array | undefined {
  const v = f.m[key];
  if (v === undefined || v === null) return undefined;
  if (!(v instanceof Uint8Array) || !isStr(f.bytes, v)) throw new WireError('BAD_FRAME', `${key} must be a string`);
  return v;
}

function optStr(f: Frame, key: string): string | undefined {
  const v = optBytes(f, key);
  return v === undefined ? undefined : text(v, key);
}

function reqStr(f: Frame, key: string): string {
  const s = optStr(f, key);
  if (s === undefined) throw new WireError('BAD_FRAME', `${key} is required`);
  return s;
}

function optUint(m: Raw, key: string): number | undefined {
  const v = m[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new WireError('BAD_FRAME', `${key} must be an unsigned integer`);
  }
  return v;
}

/** Moderation lengths: the same bounds as the server API. */
const MAX_REASON = 200;
const MAX_SECONDS = 365 * 86400;
/** Longer than any token roomcast's claims make; keeps a refresh from costing a big verify. */
const MAX_TOKEN = 4096;

function optSeconds(m: Raw): number | undefined {
  const s = optUint(m, 'seconds');
  if (s !== undefined && s > MAX_SECONDS) throw new WireError('BAD_FRAME', `seconds must be at most ${MAX_SECONDS}`);
  return s;
}

function optReason(f: Frame): string | undefined {
  const raw = optBytes(f, 'reason');
  if (raw === undefined) return undefined;
  const reason = raw.byteLength <= MAX_REASON * 4 ? text(raw, 'reason') : undefined;
  if (reason === undefined || reason.length > MAX_REASON) throw new WireError('BAD_FRAME', `reason must be at most ${MAX_REASON} chars`);
  return reason;
}

function uid(f: Frame, required: boolean): string | undefined {
  const u = required ? reqStr(f, 'uid') : optStr(f, 'uid');
  if (u !== undefined && !isUid(u)) throw new WireError('BAD_FRAME', `uid must be 1-${UID_MAX} chars`);
  return u;
}

function room(f: Frame): string {
  const v = optBytes(f, 'room');
  if (v === undefined) throw new WireError('BAD_FRAME', 'room is required');
  // Room ids are short ASCII: anything longer or not ASCII is no room id.
  if (v.byteLength > 64) throw new WireError('BAD_ROOM');
  let r = '';
  for (let i = 0; i < v.byteLength; i++) r += String.fromCharCode(v[i]!);
  if (!ROOM_RE.test(r)) throw new WireError('BAD_ROOM');
  return r;
}

/** The `ref` of a frame if it has a usable one, so errors can echo it even when the rest is bad. */
export function peekRef(decoded: unknown): number | undefined {
  if (!isMap(decoded)) return undefined;
  const v = decoded.ref;
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

/** The `kind` of a frame that is a `send` op, for counting a refused send; else undefined. */
export function peekSendKind(decoded: unknown, bytes: Uint8Array): string | undefined {
  if (!isMap(decoded)) return undefined;
  const f = { m: decoded, bytes };
  let op: string | undefined;
  try {
    op = optStr(f, 'op');
  } catch {
    return undefined;
  }
  if (op !== 'send') return undefined;
  try {
    return optStr(f, 'kind') ?? '';
  } catch {
    return '';
  }
}

/** `decoded` is `bytes` as the ingress decoder decoded it (codec.ts: string values as bytes). */
export function validateClientOp(decoded: unknown, bytes: Uint8Array, limits: ValidateLimits): ClientOp {
  if (!isMap(decoded)) throw new WireError('BAD_FRAME', 'frame must be a MessagePack map');
  const f: Frame = { m: decoded, bytes };
  const op = optStr(f, 'op');
  if (op === undefined) throw new WireError('BAD_FRAME', 'op is required');
  const ref = optUint(decoded, 'ref');
  switch (op) {
    case 'join': {
      const r = room(f);
      const since = optUint(decoded, 'since');
      const epoch = optStr(f, 'epoch');
      const last = optUint(decoded, 'last');
      if (last !== undefined && last > MAX_LAST) throw new WireError('BAD_FRAME', `last must be at most ${MAX_LAST}`);
      return { op, ref, room: r, since, epoch, last };
    }
    case 'leave':
      return { op, ref, room: room(f) };
    case 'send': {
      const r = room(f);
      const kind = reqStr(f, 'kind');
      if (kind === 'like') {
        const count = optUint(decoded, 'count');
        if (count === undefined) return { op, ref, room: r, kind };
        if (count < 1 || count > MAX_LIKE_COUNT) throw new WireError('BAD_FRAME', `count must be an integer 1-${MAX_LIKE_COUNT}`);
        return { op, ref, room: r, kind, count };
      }
      if (kind !== 'chat') throw new WireError('FORBIDDEN', `clients may send only chat and like, not ${kind.slice(0, 32)}`);
      const raw = optBytes(f, 'body');
      if (raw === undefined) throw new WireError('BAD_FRAME', 'body is required');
      if (raw.byteLength === 0) throw new WireError('BAD_FRAME', 'chat body must not be empty');
      if (raw.byteLength > limits.maxBodyBytes) throw new WireError('TOO_LARGE', `chat body is over ${limits.maxBodyBytes} bytes`);
      return { op, ref, room: r, kind, body: text(raw, 'body') };
    }
    case 'kick': {
      const r = room(f);
      const u = uid(f, true)!;
      const reason = optReason(f);
      const seconds = optSeconds(decoded);
      return { op, ref, room: r, uid: u, reason, seconds };
    }
    case 'mute': {
      const r = room(f);
      const u = uid(f, false);
      const seconds = optSeconds(decoded);
      return { op, ref, room: r, uid: u, seconds };
    }
    case 'ping':
      return { op, ref };
    case 'refresh': {
      const raw = optBytes(f, 'token');
      if (raw === undefined) throw new WireError('BAD_FRAME', 'token is required');
      if (raw.byteLength > MAX_TOKEN) throw new WireError('BAD_TOKEN', `token is over ${MAX_TOKEN} chars`);
      return { op, ref, token: text(raw, 'token') };
    }
    default:
      throw new WireError('UNKNOWN_OP', `unknown op ${JSON.stringify(op.slice(0, 32))}`);
  }
}
