// Validation of decoded client frames into typed ops. Hand-written rather than a schema
// library: it runs once per inbound frame on the hot path and must map each failure to the
// exact contract code (BAD_FRAME, UNKNOWN_OP, BAD_ROOM, TOO_LARGE, FORBIDDEN).
import { isUtf8 } from 'node:buffer';
import { WireError } from './errors.js';
import { isUid, MAX_LAST, ROOM_RE, UID_MAX, type ClientOp } from './ops.js';

export interface ValidateLimits {
  maxBodyBytes: number;
}

type Raw = Record<string, unknown>;

function isMap(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function optStr(m: Raw, key: string): string | undefined {
  const v = m[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new WireError('BAD_FRAME', `${key} must be a string`);
  return v;
}

function reqStr(m: Raw, key: string): string {
  const s = optStr(m, key);
  if (s === undefined) throw new WireError('BAD_FRAME', `${key} is required`);
  return s;
}

/** A string field whose raw bytes must be valid UTF-8; returns its byte length. */
function utf8Bytes(raw: () => unknown, key: string): number {
  const m = raw();
  const bytes = isMap(m) ? m[key] : undefined;
  if (!(bytes instanceof Uint8Array) || !isUtf8(bytes)) throw new WireError('BAD_FRAME', `${key} is not valid UTF-8`);
  return bytes.byteLength;
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

function uid(m: Raw, required: boolean): string | undefined {
  const u = required ? reqStr(m, 'uid') : optStr(m, 'uid');
  if (u !== undefined && !isUid(u)) throw new WireError('BAD_FRAME', `uid must be 1-${UID_MAX} chars`);
  return u;
}

function room(m: Raw): string {
  const r = reqStr(m, 'room');
  if (!ROOM_RE.test(r)) throw new WireError('BAD_ROOM');
  return r;
}

/** The `ref` of a frame if it has a usable one, so errors can echo it even when the rest is bad. */
export function peekRef(decoded: unknown): number | undefined {
  if (!isMap(decoded)) return undefined;
  const v = decoded.ref;
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

/**
 * `decoded` is the frame as decoded with typed strings; `raw` decodes it again with strings
 * as bytes, for the fields whose UTF-8 validity matters.
 */
export function validateClientOp(decoded: unknown, limits: ValidateLimits, raw: () => unknown): ClientOp {
  if (!isMap(decoded)) throw new WireError('BAD_FRAME', 'frame must be a MessagePack map');
  const op = optStr(decoded, 'op');
  if (op === undefined) throw new WireError('BAD_FRAME', 'op is required');
  const ref = optUint(decoded, 'ref');
  switch (op) {
    case 'join': {
      const r = room(decoded);
      const since = optUint(decoded, 'since');
      const epoch = optStr(decoded, 'epoch');
      const last = optUint(decoded, 'last');
      if (last !== undefined && last > MAX_LAST) throw new WireError('BAD_FRAME', `last must be at most ${MAX_LAST}`);
      return { op, ref, room: r, since, epoch, last };
    }
    case 'leave':
      return { op, ref, room: room(decoded) };
    case 'send': {
      const r = room(decoded);
      const kind = reqStr(decoded, 'kind');
      if (kind === 'like') return { op, ref, room: r, kind };
      if (kind !== 'chat') throw new WireError('FORBIDDEN', `clients may send only chat and like, not ${kind.slice(0, 32)}`);
      const body = reqStr(decoded, 'body');
      if (body.length === 0) throw new WireError('BAD_FRAME', 'chat body must not be empty');
      // Cheap upper bound first: a UTF-16 length over the limit is over it in bytes too.
      if (body.length > limits.maxBodyBytes || utf8Bytes(raw, 'body') > limits.maxBodyBytes) {
        throw new WireError('TOO_LARGE', `chat body is over ${limits.maxBodyBytes} bytes`);
      }
      return { op, ref, room: r, kind, body };
    }
    case 'kick': {
      const r = room(decoded);
      const u = uid(decoded, true)!;
      const reason = optStr(decoded, 'reason');
      if (reason !== undefined && (reason.length > MAX_REASON || utf8Bytes(raw, 'reason') > MAX_REASON * 4)) {
        throw new WireError('BAD_FRAME', `reason must be at most ${MAX_REASON} chars`);
      }
      const seconds = optSeconds(decoded);
      return { op, ref, room: r, uid: u, reason, seconds };
    }
    case 'mute': {
      const r = room(decoded);
      const u = uid(decoded, false);
      const seconds = optSeconds(decoded);
      return { op, ref, room: r, uid: u, seconds };
    }
    case 'ping':
      return { op, ref };
    case 'refresh': {
      const token = reqStr(decoded, 'token');
      if (token.length > MAX_TOKEN) throw new WireError('BAD_TOKEN', `token is over ${MAX_TOKEN} chars`);
      return { op, ref, token };
    }
    default:
      throw new WireError('UNKNOWN_OP', `unknown op ${JSON.stringify(op.slice(0, 32))}`);
  }
}
