// The server API (PROTOCOL §6) for business backends: JSON over HTTP on the worker's port,
// every /v1 route behind the bearer API key. Handlers talk to a narrow RoomControl.
import { Encoder } from '@msgpack/msgpack';
import type { z } from 'zod';
import { json, jsonError, type HeaderReader, type HttpReply, type HttpReq, type Route } from '../gateway/http.js';
import { ERRORS, WireError } from '../protocol/errors.js';
import type { Outcome } from '../tick/outbox.js';
import { RateLimiter } from '../util/token-bucket.js';
import type { RoomLog } from '../bus/bus.js';
import { createKeyCheck } from './auth.js';
import { apiMessage, fastMessage, type ApiMessage } from './message-body.js';
import { readHistory } from './history.js';
import { broadcastBody, disconnectBody, historyQuery, kickBody, MAX_BODY_ENCODED, MAX_DEPTH, MAX_X_ENCODED, messageBody, muteBody, roomId, topQuery, userId } from './schemas.js';

/** What the API needs from the engine. */
export interface RoomControl {
  post(room: string, m: ApiMessage): Promise<Outcome>;
  broadcast(m: ApiMessage): Promise<{ rooms: number; failed: number }>;
  kick(room: string, uid: string, seconds?: number, reason?: string): Promise<void>;
  /** Resolves with the mute's end (ms; 0 = unmuted). */
  mute(room: string, uid: string | undefined, seconds: number): Promise<number>;
  /** Closes the user's connections on every node and refuses its upgrades for `seconds`. */
  disconnect(uid: string, seconds?: number, reason?: string): Promise<void>;
  roomInfo(room: string): Promise<{ room: string; members: number; seq: number; epoch: string; ratePerSec: number }>;
  topRooms(n: number): Array<{ room: string; members: number }>;
}

export interface ApiOptions {
  control: RoomControl;
  /** Room logs, read by GET /v1/rooms/:room/messages. */
  log: Pick<RoomLog, 'range'>;
  apiKey: string | null;
  /** API messages per second per room. */
  apiRate: number;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryMs?: number,
  ) {
    super(message);
  }
}

/** The body as JSON; a `__proto__` key anywhere is refused. */
function bodyJson(req: HttpReq): unknown {
  let raw: unknown;
  let proto = false;
  const text = req.text;
  // A reviver costs a call per key; only a body that spells the key, plainly or with \u escapes,
  // can hold it.
  const mayHoldProto = text.includes('__proto__') || text.includes('\\u');
  try {
    raw = mayHoldProto
      ? JSON.parse(text, (key, value: unknown) => {
          if (key === '__proto__') proto = true;
          return value;
        })
      : JSON.parse(text);
  } catch {
    throw new ApiError(400, 'BAD_REQUEST', 'body must be JSON');
  }
  // MessagePack decoders (clients' included) refuse a __proto__ key: such a body would reach
  // members as frames they cannot read.
  if (proto) throw new ApiError(400, 'BAD_REQUEST', 'body: a key named __proto__ is not allowed');
  return raw;
}

function check<T extends z.ZodType>(schema: T, raw: unknown): z.infer<T> {
  const res = schema.safeParse(raw);
  if (!res.success) {
    const issue = res.error.issues[0];
    throw new ApiError(400, 'BAD_REQUEST', `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`);
  }
  return res.data;
}

const parse = <T extends z.ZodType>(schema: T, req: HttpReq): z.infer<T> => check(schema, bodyJson(req));

/** The post's message: the hand check first (message-body.ts), the schema for the rest and for the error. */
function message(req: HttpReq): ApiMessage {
  const raw = bodyJson(req);
  const m = fastMessage(raw);
  if (m) return m;
  const d = check(messageBody, raw);
  return apiMessage(d.kind, d.body, d.uid, d.name, d.priority, d.x);
}

function room(req: HttpReq): string {
  const r = req.params.room ?? '';
  if (!roomId.safeParse(r).success) throw new ApiError(400, 'BAD_ROOM', ERRORS.BAD_ROOM.message);
  return r;
}

/** Nesting depth of a JSON value (a batch frame wraps bodies a few levels deeper). */
function depth(v: unknown, limit: number): number {
  if (typeof v !== 'object' || v === null) return 0;
  if (limit <= 0) return 1;
  let max = 0;
  for (const child of Object.values(v)) max = Math.max(max, depth(child, limit - 1));
  return max + 1;
}

/** One encoder for the size checks: msgpack's encode() builds an Encoder and its buffer per call. */
const sizer = new Encoder();
const encodedSize = (v: unknown): number => sizer.encodeSharedRef(v).byteLength;
/** A string's is its UTF-8 bytes and msgpack's 1-5 byte header: the common body is not encoded to be measured. */
const bodySize = (v: unknown): number => {
  if (typeof v !== 'string') return encodedSize(v);
  const n = Buffer.byteLength(v, 'utf8');
  return n + (n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5);
};

function checkSizes(m: { body: unknown; x?: Record<string, unknown> }): void {
  if (depth(m.body, MAX_DEPTH) > MAX_DEPTH || (m.x !== undefined && depth(m.x, MAX_DEPTH) > MAX_DEPTH)) {
    throw new ApiError(400, 'BAD_REQUEST', `body and x may nest at most ${MAX_DEPTH} levels`);
  }
  if (bodySize(m.body) > MAX_BODY_ENCODED) throw new ApiError(413, 'TOO_LARGE', `body over ${MAX_BODY_ENCODED} bytes encoded`);
  if (m.x !== undefined && encodedSize(m.x) > MAX_X_ENCODED) throw new ApiError(413, 'TOO_LARGE', `x over ${MAX_X_ENCODED} bytes encoded`);
}

function outcomeReply(o: Outcome): HttpReply {
  if ('error' in o) {
    const code = o.error.code;
    return jsonError(ERRORS[code].status, code, o.error.message);
  }
  return o.shown ? json(202, { seq: o.seq, shown: true }) : json(202, { shown: false });
}

/** An API or wire error as its reply; anything else is a bug, and mount answers 500. */
function errorReply(err: unknown): HttpReply {
  if (err instanceof WireError) return jsonError(ERRORS[err.code].status, err.code, err.message);
  if (!(err instanceof ApiError)) throw err;
  const reply = jsonError(err.status, err.code, err.message);
  if (err.retryMs !== undefined) reply.headers = { 'Retry-After': String(Math.ceil(err.retryMs / 1000)) };
  return reply;
}

export function apiRoutes(o: ApiOptions): Route[] {
  const authorized = createKeyCheck(o.apiKey);
  // A burst below one token would never allow anything.
  const limiter = new RateLimiter({ rate: o.apiRate, burst: Math.max(1, o.apiRate) });
  setInterval(() => limiter.sweep(), 30_000).unref();
  // Checked as soon as the headers are in: an unauthenticated body is never read.
  const precheck = (headers: HeaderReader) =>
    authorized(headers.getHeader('authorization')) ? undefined : jsonError(401, 'UNAUTHORIZED', 'missing or wrong API key');
  // Not an async wrapper: its awaits added two promise resumes to every post's reply.
  const guard =
    (fn: (req: HttpReq) => Promise<HttpReply> | HttpReply) =>
    (req: HttpReq): Promise<HttpReply> | HttpReply => {
      try {
        const out = fn(req);
        return out instanceof Promise ? out.catch(errorReply) : out;
      } catch (err) {
        return errorReply(err);
      }
    };
  const limit = (key: string) => {
    const wait = limiter.take(key);
    if (wait > 0) throw new ApiError(429, 'RATE_LIMITED', 'too many API messages for this room', wait);
  };

  const routes: Route[] = [
    {
      method: 'post',
      pattern: '/v1/rooms/:room/messages',
      handler: guard((req) => {
        const r = room(req);
        const m = message(req);
        checkSizes(m);
        limit(r);
        return o.control.post(r, m).then(outcomeReply);
      }),
    },
    {
      method: 'get',
      pattern: '/v1/rooms/:room/messages',
      handler: guard(async (req) => {
        const r = room(req);
        const q = historyQuery.safeParse({ since: req.query.get('since') ?? undefined, limit: req.query.get('limit') ?? undefined });
        if (!q.success) throw new ApiError(400, 'BAD_REQUEST', 'since must be an unsigned integer and limit an integer 1-1000');
        return json(200, await readHistory(o.log, r, q.data.since, q.data.limit));
      }),
    },
    {
      method: 'post',
      pattern: '/v1/broadcast',
      handler: guard(async (req) => {
        const m = parse(broadcastBody, req);
        checkSizes(m);
        limit('\0broadcast');
        const res = await o.control.broadcast(apiMessage(m.kind, m.body, undefined, undefined, 'high', m.x));
        if (res.rooms > 0 && res.failed === res.rooms) return jsonError(503, 'UNAVAILABLE', ERRORS.UNAVAILABLE.message);
        return json(202, res);
      }),
    },
    {
      method: 'get',
      pattern: '/v1/rooms/:room',
      handler: guard(async (req) => {
        const info = await o.control.roomInfo(room(req));
        if (info.members === 0 && info.seq === 0) return jsonError(404, 'NOT_FOUND', 'room has no members and no log');
        return json(200, info);
      }),
    },
    {
      method: 'get',
      pattern: '/v1/rooms',
      handler: guard((req) => {
        const top = topQuery.safeParse(req.query.get('top') ?? undefined);
        if (!top.success) throw new ApiError(400, 'BAD_REQUEST', 'top must be an integer 1-1000');
        return json(200, { rooms: o.control.topRooms(top.data) });
      }),
    },
    {
      method: 'post',
      pattern: '/v1/rooms/:room/kick',
      handler: guard(async (req) => {
        const r = room(req);
        const b = parse(kickBody, req);
        await o.control.kick(r, b.uid, b.seconds, b.reason);
        return json(200, { ok: true });
      }),
    },
    {
      method: 'post',
      pattern: '/v1/rooms/:room/mute',
      handler: guard(async (req) => {
        const r = room(req);
        const b = parse(muteBody, req);
        return json(200, { ok: true, until: await o.control.mute(r, b.uid, b.seconds) });
      }),
    },
    {
      method: 'post',
      pattern: '/v1/users/:uid/disconnect',
      handler: guard(async (req) => {
        const uid = req.params.uid ?? '';
        if (!userId.safeParse(uid).success) throw new ApiError(400, 'BAD_REQUEST', 'uid must be 1-64 chars');
        // An empty body is {}: every field is optional.
        const b = req.text === '' ? {} : parse(disconnectBody, req);
        await o.control.disconnect(uid, b.seconds, b.reason);
        return json(200, { ok: true });
      }),
    },
  ];
  return routes.map((r) => ({ ...r, precheck }));
}
