// Builds a worker's business events from the config: none unless --events-url or
// --events-stream is given.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { parseClusterNodes } from '../bus/redis/connection.js';
import type { Config } from '../config/schema.js';
import type { Metrics } from '../metrics/metrics.js';
import { httpSink } from './http-sink.js';
import { RoomEvents } from './room-events.js';
import { streamSink } from './stream-sink.js';
import type { EventSink } from './types.js';

export interface EventsDeps {
  node: string;
  /** Signs webhook batches when no --events-secret is given. */
  apiKey: string | null;
  metrics: Metrics;
  log: Logger;
  members: (room: string) => number;
  othersMembers: (room: string) => number;
}

const RETRY = { baseMs: 500, maxMs: 30_000 };

export function createEvents(c: Config, d: EventsDeps): RoomEvents | undefined {
  const sinks: EventSink[] = [];
  const secret = c.eventsSecret ?? d.apiKey;
  if (c.eventsUrl !== null && secret !== null) sinks.push(httpSink({ url: c.eventsUrl, secret, timeoutMs: c.eventsTimeoutMs }));
  if (c.eventsStream !== null) {
    const target = c.redisCluster !== null ? { cluster: parseClusterNodes(c.redisCluster) } : { url: c.redis! };
    sinks.push(streamSink({ target, key: c.eventsStream, maxLen: c.eventsStreamMaxLen, ttlSec: c.eventsStreamTtl, commandTimeoutMs: c.eventsTimeoutMs }));
  }
  if (sinks.length === 0) return undefined;
  const m = d.metrics;
  const log = d.log.child({ mod: 'events' });
  return new RoomEvents({
    sinks,
    node: d.node,
    idPrefix: `${d.node}:${randomBytes(4).toString('hex')}`,
    batchMax: c.eventsBatch,
    maxQueue: c.eventsQueue,
    retry: RETRY,
    flushMs: c.eventsFlushMs,
    historyTtlMs: c.historyTtl * 1000,
    metrics: { sent: m.eventsSent, dropped: m.eventsDropped, failures: m.eventsFailures, queued: m.eventsQueued },
    members: d.members,
    othersMembers: d.othersMembers,
    onError: (sink, err) => log.warn({ sink, err: err instanceof Error ? err.message : String(err) }, 'business events not delivered; retrying'),
    now: Date.now,
  });
}
