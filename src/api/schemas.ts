// Request bodies of the server API (PROTOCOL §6), validated with zod.
import { z } from 'zod';
import { ROOM_RE, UID_MAX } from '../protocol/ops.js';

export const MAX_BODY_ENCODED = 4096;
export const MAX_X_ENCODED = 1024;
/** MessagePack encoders refuse depth > 100; a batch adds a few levels around a body. */
export const MAX_DEPTH = 32;

export const KIND_RE = /^[a-z0-9_-]{1,32}$/;
export const NAME_MAX = 32;

export const roomId = z.string().regex(ROOM_RE, 'room id must be 1-64 chars of A-Z a-z 0-9 _ . : -');
const kind = z
  .string()
  .regex(KIND_RE, 'kind must be 1-32 chars of a-z 0-9 _ -')
  .refine((k) => k !== 'like', 'likes are aggregated counts; the API cannot send them');
const body = z.union([z.string().min(1), z.record(z.string(), z.unknown())]);
const extras = z.record(z.string(), z.unknown());
const uid = z.string().min(1).max(UID_MAX);

export const messageBody = z
  .object({
    kind,
    body,
    uid: uid.optional(),
    name: z.string().min(1).max(NAME_MAX).optional(),
    priority: z.enum(['high', 'normal']).optional(),
    x: extras.optional(),
  })
  .strict();

export const broadcastBody = z.object({ kind, body, x: extras.optional() }).strict();

export const kickBody = z
  .object({
    uid,
    reason: z.string().max(200).optional(),
    seconds: z.number().int().min(0).max(365 * 86400).optional(),
  })
  .strict();

export const userId = z.string().min(1).max(64);

export const disconnectBody = z
  .object({
    reason: z.string().max(200).optional(),
    seconds: z.number().int().min(0).max(365 * 86400).optional(),
  })
  .strict();

export const muteBody = z
  .object({
    uid: uid.optional(),
    seconds: z.number().int().min(0).max(365 * 86400),
  })
  .strict();

export const topQuery = z.coerce.number().int().min(1).max(1000).default(10);

/** GET /v1/rooms/:room/messages: entries after `since`, at most `limit` of them. */
export const historyQuery = z.object({
  since: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
