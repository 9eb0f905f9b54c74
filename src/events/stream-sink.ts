// Events to a Redis stream the backend reads with consumer groups (XREADGROUP), so they survive
// a backend outage: one entry per event (fields type, room, event = JSON), a batch in one
// round trip, the stream bounded by MAXLEN ~ and expiring `ttlSec` after its last event.
import { Cluster, Redis } from 'ioredis';
import type { EventBatch, EventSink } from './types.js';

export interface StreamSinkOptions {
  target: { url: string } | { cluster: Array<{ host: string; port: number }> };
  key: string;
  maxLen: number;
  ttlSec: number;
  commandTimeoutMs: number;
}

export function streamSink(o: StreamSinkOptions): EventSink {
  // Commands fail fast while Redis is away: the dispatcher retries the batch with backoff.
  const opts = { maxRetriesPerRequest: 1, commandTimeout: o.commandTimeoutMs, enableOfflineQueue: false, lazyConnect: false };
  const redis = 'url' in o.target ? new Redis(o.target.url, opts) : new Cluster(o.target.cluster, { redisOptions: opts, enableOfflineQueue: false });
  redis.on('error', () => undefined); // failures surface as rejected sends (counted there)
  return {
    name: 'stream',
    async send(batch: EventBatch): Promise<void> {
      const m = redis.multi();
      for (const e of batch.events) m.xadd(o.key, 'MAXLEN', '~', o.maxLen, '*', 'type', e.type, 'room', e.room, 'batch', batch.id, 'event', JSON.stringify(e));
      m.expire(o.key, o.ttlSec);
      const res = await m.exec();
      const failed = res?.find(([err]) => err);
      if (!res || failed) throw failed?.[0] ?? new Error('events stream: transaction aborted');
    },
    async close(): Promise<void> {
      redis.disconnect();
    },
  };
}
