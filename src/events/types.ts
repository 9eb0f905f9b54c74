// Business events (docs/protocol.md §8 "Business events"): what happened in the rooms, for the
// platform's own systems. Shapes are part of the documented contract (docs/openapi.yaml, webhooks).
import type { Msg } from '../protocol/ops.js';

export type RoomEvent =
  /** One logged entry (the archive a platform replays over a recording): every message of a tick. */
  | { type: 'message.appended'; room: string; epoch: string; seq: number; ts: number; msgs: Msg[]; likes: number }
  /** Joins and leaves on one worker over one flush interval, summed, with a sample of uids. */
  | { type: 'members.changed'; room: string; ts: number; joined: number; left: number; members: number; sample: { joined: string[]; left: string[] } }
  | { type: 'room.started'; room: string; ts: number; cause: 'member' | 'message' }
  | { type: 'room.ended'; room: string; ts: number; reason: 'empty' | 'expired'; startedAt: number; peak: number };

/** One delivery: the body of an events webhook POST (and, event by event, the stream's entries). */
export interface EventBatch {
  /** Unique per batch; a retried batch keeps its id (consumers dedupe by it). */
  id: string;
  node: string;
  sentAt: number;
  events: RoomEvent[];
}

/** Where batches go; `send` rejects when the batch was not taken (it is retried). */
export interface EventSink {
  readonly name: SinkName;
  send(batch: EventBatch): Promise<void>;
  close(): Promise<void>;
}

export const SINKS = ['http', 'stream'] as const;
export type SinkName = (typeof SINKS)[number];

/** Signature header of webhook POSTs: `sha256=<hex HMAC-SHA256 of the raw body>`. */
export const SIGNATURE_HEADER = 'x-roomcast-signature';
