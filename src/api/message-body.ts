// The body of POST /v1/rooms/:room/messages, in one shape. Every API post passes here: the
// common body (a kind, a string or object body, maybe uid, name, priority, x) is checked by
// hand, and anything else goes to the zod schema (schemas.ts), which accepts a superset and
// words the error. zod's object parse copies each body into an object of a shape that varies with the keys
// sent, and the loads downstream then missed their caches: with the promise hops around it, the
// post path cost twice raw uWS's per post (bench/notes/big-room.md, session 21).
import { UID_MAX } from '../protocol/ops.js';
import { KIND_RE, NAME_MAX } from './schemas.js';

/** A message for a room, from the API. The API builds it with apiMessage(), in one shape. */
export interface ApiMessage {
  kind: string;
  body: unknown;
  uid?: string;
  name?: string;
  priority: 'high' | 'normal';
  x?: Record<string, unknown>;
}

/** One shape for every message (all keys, in one order): monomorphic loads wherever it goes. */
export function apiMessage(kind: string, body: unknown, uid?: string, name?: string, priority?: 'high' | 'normal', x?: Record<string, unknown>): ApiMessage {
  return { kind, body, uid, name, priority: priority ?? (kind === 'system' || kind === 'gift' ? 'high' : 'normal'), x };
}

/** A plain JSON object (what z.record accepts from JSON.parse: not an array, not null). */
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const optString = (v: unknown, max: number): v is string | undefined => v === undefined || (typeof v === 'string' && v.length >= 1 && v.length <= max);

/** The message when the parsed body passes the hand check (a subset of what messageBody accepts), else undefined. */
export function fastMessage(raw: unknown): ApiMessage | undefined {
  if (!isRecord(raw)) return undefined;
  for (const k in raw) if (k !== 'kind' && k !== 'body' && k !== 'uid' && k !== 'name' && k !== 'priority' && k !== 'x') return undefined;
  const { kind, body, uid, name, priority, x } = raw;
  if (typeof kind !== 'string' || kind === 'like' || !KIND_RE.test(kind)) return undefined;
  if (!(typeof body === 'string' ? body.length >= 1 : isRecord(body))) return undefined;
  if (!optString(uid, UID_MAX) || !optString(name, NAME_MAX)) return undefined;
  if (priority !== undefined && priority !== 'high' && priority !== 'normal') return undefined;
  if (x !== undefined && !isRecord(x)) return undefined;
  return apiMessage(kind, body, uid, name, priority, x);
}
