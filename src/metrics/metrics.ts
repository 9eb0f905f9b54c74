// The contract's metrics (PROTOCOL §7) on an injected registry. Room-labelled series exist
// only for the top N rooms by members, so label cardinality stays bounded.
import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client';

export type MessageResult =
  | 'accepted'
  | 'rate_limited'
  | 'too_large'
  | 'invalid'
  | 'muted'
  | 'forbidden'
  | 'rejected'
  | 'sampled_out'
  | 'unavailable';

export interface Metrics {
  connections: Gauge;
  rooms: Gauge;
  roomMembers: Gauge<'room'>;
  messagesReceived: Counter<'kind' | 'result'>;
  batchesPublished: Counter;
  deliveries: Counter;
  deliveredBytes: Counter;
  tickDuration: Histogram;
  effectiveTick: Gauge;
  tickTarget: Gauge;
  deliveryLatency: Histogram;
  busAppend: Histogram;
  busReadLag: Histogram;
  backpressureDrops: Counter;
  busAvailable: Gauge;
  authFailures: Counter<'reason'>;
  httpRequests: Counter<'route' | 'status'>;
  badFrames: Counter<'code'>;
  joins: Counter<'result'>;
  moderationEntries: Gauge<'table'>;
}

const P = 'roomcast_';

/** Kinds with their own label value; custom API kinds count as `other` (bounded cardinality). */
export function kindLabel(kind: string): string {
  return kind === 'chat' || kind === 'like' || kind === 'system' || kind === 'gift' ? kind : 'other';
}
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * Event-loop lag sampling period (ms). prom-client's default, 10 ms, wakes an idle worker 100
 * times a second: on a node running dozens of workers that was most of their idle CPU. Each
 * sample still measures the delay exactly; only the number of samples drops.
 */
export const LAG_SAMPLE_MS = 50;

export function createMetrics(registry: Registry, opts: { defaultMetrics?: boolean } = {}): Metrics {
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: P, eventLoopMonitoringPrecision: LAG_SAMPLE_MS });
  const registers = [registry];
  return {
    connections: new Gauge({ name: P + 'connections', help: 'open WebSocket connections', registers }),
    rooms: new Gauge({ name: P + 'rooms', help: 'rooms with local members', registers }),
    roomMembers: new Gauge({ name: P + 'room_members', help: 'members of the top rooms', labelNames: ['room'], registers }),
    messagesReceived: new Counter({
      name: P + 'messages_received_total',
      help: 'messages received by kind and result',
      labelNames: ['kind', 'result'],
      registers,
    }),
    batchesPublished: new Counter({ name: P + 'batches_published_total', help: 'batch frames published', registers }),
    deliveries: new Counter({ name: P + 'deliveries_total', help: 'frames x local receivers', registers }),
    deliveredBytes: new Counter({ name: P + 'delivered_bytes_total', help: 'bytes handed to sockets', registers }),
    tickDuration: new Histogram({
      name: P + 'tick_duration_seconds',
      help: 'time spent in one tick (append + deliver)',
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    effectiveTick: new Gauge({ name: P + 'effective_tick_seconds', help: 'current (possibly stretched) tick length', registers }),
    tickTarget: new Gauge({ name: P + 'tick_target_seconds', help: 'configured tick length (tickMs)', registers }),
    deliveryLatency: new Histogram({
      name: P + 'delivery_latency_seconds',
      help: 'accepted -> handed to the sockets',
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    busAppend: new Histogram({ name: P + 'bus_append_seconds', help: 'one pipelined bus append', buckets: LATENCY_BUCKETS, registers }),
    busReadLag: new Histogram({
      name: P + 'bus_read_lag_seconds',
      help: 'append -> entry read back from the bus',
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    backpressureDrops: new Counter({ name: P + 'backpressure_drops_total', help: 'frames skipped for slow sockets', registers }),
    busAvailable: new Gauge({ name: P + 'bus_available', help: '1 while the bus (Redis) is reachable', registers }),
    authFailures: new Counter({ name: P + 'auth_failures_total', help: 'refused upgrades by reason', labelNames: ['reason'], registers }),
    httpRequests: new Counter({
      name: P + 'http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['route', 'status'],
      registers,
    }),
    joins: new Counter({
      name: P + 'joins_total',
      help: 'joins by result (joined, recovered, unrecovered, refused)',
      labelNames: ['result'],
      registers,
    }),
    badFrames: new Counter({ name: P + 'bad_frames_total', help: 'rejected inbound frames by error code', labelNames: ['code'], registers }),
    moderationEntries: new Gauge({
      name: P + 'moderation_entries',
      help: 'bans, mutes and whole-room mutes held by this worker',
      labelNames: ['table'],
      registers,
    }),
  };
}
