// The contract's metrics (PROTOCOL §7) on an injected registry. Room-labelled series exist
// only for the top N rooms by members, so label cardinality stays bounded. Every labelled
// counter whose label values are known exports each series at 0 from the start (PROTOCOL §7),
// so a fresh node's panels show 0, not "No data".
import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client';
import type { AuthFailure } from '../auth/tokens.js';
import { BUS_OPS, BUS_STATUSES, type BusEvents } from '../bus/bus.js';
import { registerEventLoopLag, UNUSED_LAG_SAMPLE_MS, type LagSampling } from './event-loop.js';
import { RoomStats } from './room-stats.js';
import { SINKS } from '../events/types.js';

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

const MESSAGE_RESULTS: readonly MessageResult[] = [
  'accepted', 'rate_limited', 'too_large', 'invalid', 'muted', 'forbidden', 'rejected', 'sampled_out', 'unavailable',
];
const KINDS = ['chat', 'like', 'system', 'gift', 'other'] as const;
const AUTH_FAILURES: ReadonlyArray<AuthFailure | 'rate_limited' | 'banned' | 'user_conns'> = [
  'missing',
  'expired',
  'signature',
  'malformed',
  'claims',
  'rate_limited',
  'banned',
  'user_conns',
];
/** The error codes a bad (or over-budget) frame is counted under (the rest are answered per op). */
const BAD_FRAME_CODES = ['BAD_FRAME', 'UNKNOWN_OP', 'RATE_LIMITED'] as const;
const JOIN_RESULTS = ['joined', 'recovered', 'unrecovered', 'refused'] as const;
export const REVIEW_OUTCOMES = ['ok', 'timeout', 'error'] as const;
/**
 * Close codes with their own series (docs/protocol.md §8): 1000 normal, 1001 going away
 * (drain, or a browser leaving), 1005 closed without a code, 1006 dropped without a close
 * frame (network, or an oversized frame), 4008 bad frames, 4009 too slow, 4010 token
 * expired, 4011 disconnected by the API. Anything else counts as `other`.
 */
export const CLOSE_CODES = ['1000', '1001', '1005', '1006', '4008', '4009', '4010', '4011'] as const;

/** The `code` label of roomcast_disconnects_total for a WebSocket close code. */
export function closeCodeLabel(code: number): string {
  const s = String(code);
  return (CLOSE_CODES as readonly string[]).includes(s) ? s : 'other';
}

export interface Metrics {
  /** The event-loop delay histogram: sampled only while the worker has traffic (LoopLag). */
  loopDelay: LagSampling;
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
  /** A delivery step until its frames are in the sockets, and the last step's timings (the reach split). */
  fanout: Histogram;
  fanoutCpu: Counter;
  batchLag: Gauge<'stage'>;
  batchWrittenAt: Gauge;
  busAppend: Histogram;
  busReadLag: Histogram;
  backpressureDrops: Counter;
  busAvailable: Gauge;
  authFailures: Counter<'reason'>;
  httpRequests: Counter<'route' | 'status'>;
  badFrames: Counter<'code'>;
  joins: Counter<'result'>;
  connects: Counter;
  disconnects: Counter<'code'>;
  reviewCalls: Counter<'outcome'>;
  /** Exported by the bus: errors by operation, reconnects, re-established reads, gap fills, status. */
  busErrors: Counter<'op'>;
  busReconnects: Counter;
  busResubscribes: Counter;
  busGapFills: Counter;
  busStatus: Gauge<'status'>;
  roomStats: RoomStats;
  tokenRefreshes: Counter<'result'>;
  expiryCloses: Counter;
  /** Reply frames (acks, errors, pongs, replays) and the socket writes they took, corked per turn. */
  replyFrames: Counter;
  replyWrites: Counter;
  /** Chat and likes shed unread while the event loop lagged (shedLagMs). */
  shed: Counter<'kind'>;
  moderationEntries: Gauge<'table'>;
  /** Business events by sink (`http`, `stream`): delivered, dropped, failed attempts, waiting. */
  eventsSent: Counter<'sink'>;
  eventsDropped: Counter<'sink'>;
  eventsFailures: Counter<'sink'>;
  eventsQueued: Gauge<'sink'>;
}

const P = 'roomcast_';

/** Kinds with their own label value; custom API kinds count as `other` (bounded cardinality). */
export function kindLabel(kind: string): string {
  return kind === 'chat' || kind === 'like' || kind === 'system' || kind === 'gift' ? kind : 'other';
}
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * prom-client's process metrics, with an event-loop delay that reads ~0 when idle
 * (event-loop.ts). Its sampling starts paused: a worker resumes it while it has traffic.
 */
export function processMetrics(registry: Registry): LagSampling {
  collectDefaultMetrics({ register: registry, prefix: P, eventLoopMonitoringPrecision: UNUSED_LAG_SAMPLE_MS });
  return registerEventLoopLag(registry, P);
}

/** Each known label combination at 0. */
function zero<L extends string>(c: Counter<L>, label: L, values: readonly string[]): Counter<L> {
  for (const v of values) c.inc({ [label]: v } as Partial<Record<L, string>>, 0);
  return c;
}

export function createMetrics(registry: Registry, opts: { defaultMetrics?: boolean } = {}): Metrics {
  const loopDelay = opts.defaultMetrics !== false ? processMetrics(registry) : { resume: () => {}, pause: () => {} };
  const registers = [registry];
  /** A labelled counter whose known label values are exported at 0 from the start. */
  const counter = <L extends string>(name: string, help: string, label: L, values: readonly string[]) =>
    zero(new Counter<L>({ name: P + name, help, labelNames: [label], registers }), label, values);
  const messagesReceived = new Counter({
    name: P + 'messages_received_total',
    help: 'messages received by kind and result',
    labelNames: ['kind', 'result'],
    registers,
  });
  for (const kind of KINDS) for (const result of MESSAGE_RESULTS) messagesReceived.inc({ kind, result }, 0);
  const busStatus = new Gauge({ name: P + 'bus_status', help: '1 for the bus connection\'s current status', labelNames: ['status'], registers });
  for (const status of BUS_STATUSES) busStatus.set({ status }, 0);
  const eventsQueued = new Gauge({ name: P + 'events_queued', help: 'business events waiting for delivery, by sink', labelNames: ['sink'], registers });
  for (const sink of SINKS) eventsQueued.set({ sink }, 0);
  return {
    loopDelay,
    connections: new Gauge({ name: P + 'connections', help: 'open WebSocket connections', registers }),
    rooms: new Gauge({ name: P + 'rooms', help: 'rooms with local members', registers }),
    roomMembers: new Gauge({ name: P + 'room_members', help: 'members of the top rooms', labelNames: ['room'], registers }),
    messagesReceived,
    batchesPublished: new Counter({ name: P + 'batches_published_total', help: 'batch frames published', registers }),
    deliveries: new Counter({ name: P + 'deliveries_total', help: 'frames written to sockets (skipped ones not counted)', registers }),
    deliveredBytes: new Counter({ name: P + 'delivered_bytes_total', help: 'bytes written to sockets', registers }),
    tickDuration: new Histogram({
      name: P + 'tick_duration_seconds',
      help: "one tick's own work: outboxes, budgets and the append sent (its round trip runs beside the next ticks)",
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
    fanout: new Histogram({
      name: P + 'fanout_seconds',
      help: 'one delivery step: batch frames encoded, published, and written by uWS to every local member socket',
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    fanoutCpu: new Counter({
      name: P + 'fanout_cpu_seconds_total',
      help: 'CPU time of the worker during those delivery steps (their wall time without the time it waited for a core)',
      registers,
    }),
    // Per-worker series (the worker label); `max` keeps a merged reading meaningful: the slowest worker.
    batchLag: new Gauge({
      name: P + 'batch_lag_seconds',
      help: "the last delivery step, from its oldest entry's append: entries in hand (stage=read), frames in the sockets (stage=written)",
      labelNames: ['stage'],
      aggregator: 'max',
      registers,
    }),
    batchWrittenAt: new Gauge({
      name: P + 'batch_written_timestamp_seconds',
      help: "Unix time the last delivery step's frames were in every local member socket",
      aggregator: 'max',
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
    authFailures: counter('auth_failures_total', 'refused upgrades by reason', 'reason', AUTH_FAILURES),
    httpRequests: new Counter({
      name: P + 'http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['route', 'status'],
      registers,
    }),
    joins: counter('joins_total', 'joins by result (joined, recovered, unrecovered, refused)', 'result', JOIN_RESULTS),
    badFrames: counter('bad_frames_total', 'rejected inbound frames by error code', 'code', BAD_FRAME_CODES),
    connects: new Counter({ name: P + 'connects_total', help: 'WebSocket connections opened', registers }),
    disconnects: counter('disconnects_total', 'WebSocket connections closed, by close code', 'code', [...CLOSE_CODES, 'other']),
    reviewCalls: counter('review_calls_total', 'review webhook calls by outcome (ok, timeout, error)', 'outcome', REVIEW_OUTCOMES),
    busErrors: counter('bus_errors_total', 'bus (Redis) operations that failed, by operation', 'op', BUS_OPS),
    busReconnects: new Counter({ name: P + 'bus_reconnects_total', help: 'bus (Redis) connections re-established', registers }),
    busResubscribes: new Counter({
      name: P + 'bus_resubscribes_total',
      help: 'partition or room reads re-established after an error or reconnect',
      registers,
    }),
    busGapFills: new Counter({ name: P + 'bus_gap_fills_total', help: "entries fetched from a room's log to fill a gap", registers }),
    busStatus,
    roomStats: new RoomStats(registry, P),
    moderationEntries: new Gauge({
      name: P + 'moderation_entries',
      help: 'bans, mutes and whole-room mutes held by this worker',
      labelNames: ['table'],
      registers,
    }),
    tokenRefreshes: counter('token_refreshes_total', 'refresh ops by result (ok, bad_token, forbidden)', 'result', ['ok', 'bad_token', 'forbidden']),
    expiryCloses: new Counter({ name: P + 'token_expiry_closes_total', help: 'connections closed with 4010 (token expired, not refreshed)', registers }),
    replyFrames: new Counter({ name: P + 'reply_frames_total', help: 'frames sent to one socket (acks, errors, pongs, replays)', registers }),
    shed: counter('shed_total', 'chat and likes shed unread while the event loop lagged over shedLagMs', 'kind', ['chat', 'like']),
    replyWrites: new Counter({ name: P + 'reply_writes_total', help: 'socket writes those reply frames took (one per socket per loop turn; acks written with a batch frame share its write and are not counted)', registers }),
    eventsSent: counter('events_sent_total', 'business events delivered, by sink', 'sink', SINKS),
    eventsDropped: counter('events_dropped_total', 'business events lost: over the queue bound, or undelivered at shutdown', 'sink', SINKS),
    eventsFailures: counter('events_failures_total', 'failed business-event deliveries (each retried with backoff)', 'sink', SINKS),
    eventsQueued,
  };
}

/** The bus's events as metrics. */
export function busEvents(m: Metrics): BusEvents {
  return {
    error: (op) => m.busErrors.inc({ op }),
    reconnect: () => m.busReconnects.inc(),
    resubscribe: () => m.busResubscribes.inc(),
    gapFill: (n) => m.busGapFills.inc(n),
    status: (s) => {
      for (const v of BUS_STATUSES) m.busStatus.set({ status: v }, v === s ? 1 : 0);
    },
  };
}
