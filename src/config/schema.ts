// Every option with its default, in one schema that rejects unknown keys. docs/configuration.md
// mirrors this list (a test checks that every key is documented).
import { isIP } from 'node:net';
import { z } from 'zod';

/** `addr` or `addr/prefix` (IPv4 or IPv6). */
function isCidr(s: string): boolean {
  const [addr = '', prefix, extra] = s.split('/');
  const family = isIP(addr);
  if (family === 0 || extra !== undefined) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

const commaList = (v: unknown) => (typeof v === 'string' ? v.split(',').map((w) => w.trim()).filter(Boolean) : v);

export const configSchema = z
  .object({
    port: z.number().int().min(0).max(65535).default(8080).describe('TCP port for WebSocket and HTTP'),
    host: z.string().min(1).nullable().default(null).describe('address to listen on; absent = 0.0.0.0, or 127.0.0.1 in dev mode'),
    adminPort: z
      .preprocess((v) => (typeof v === 'string' && v.trim() !== '' ? Number(v) : v), z.number().int().min(0).max(65535).nullable())
      .default(null)
      .describe('port of a separate listener for /metrics, /healthz, /readyz (the public port then no longer answers them); absent = served on --port'),
    adminHost: z.string().min(1).default('127.0.0.1').describe('address of the --admin-port listener'),
    workers: z
      .union([z.number().int().min(1).max(256), z.literal('auto')])
      .default(1)
      .describe('worker processes; "auto" = one per core; more than one needs --redis'),
    redis: z.string().nullable().default(null).describe('Redis URL; absent = in-memory bus (single worker)'),
    redisCluster: z
      .string()
      .regex(/^\s*[^\s,:]+:\d{1,5}(\s*,\s*[^\s,:]+:\d{1,5})*\s*$/, 'host:port[,host:port…]')
      .nullable()
      .default(null)
      .describe('Redis Cluster seed nodes host:port[,host:port…]; instead of --redis'),
    busPartitions: z
      .number()
      .int()
      .min(1)
      .max(4096)
      .default(64)
      .describe('partition streams rooms hash to (Redis bus); the same on every node of a deployment'),
    historyTtl: z.number().int().min(1).default(86400).describe('seconds a room log and its keys live after the last append'),
    redisWaitReplicas: z
      .number()
      .int()
      .min(0)
      .max(16)
      .default(0)
      .describe('acks wait for this many Redis replicas (WAIT); 0 = asynchronous replication'),
    redisPrefix: z.string().regex(/^[A-Za-z0-9_.:-]{1,32}$/).default('rc').describe('Redis key prefix; one prefix = one roomcast cluster'),
    secret: z.string().min(1).nullable().default(null).describe('HS256 token secret, at least 32 bytes; absent = dev mode'),
    apiKey: z.string().min(1).nullable().default(null).describe('bearer key for /v1 routes, at least 16 chars; dev mode uses "dev" when absent'),
    allowGuests: z.boolean().default(false).describe('allow read-only guests without a token (needs guestRooms)'),
    guestRooms: z
      .preprocess((v) => (typeof v === 'string' ? v.split(',').map((w) => w.trim()).filter(Boolean) : v), z.array(z.string().min(1)))
      .default([])
      .describe('rooms guests may join, in the rooms claim syntax (a trailing * is a prefix; comma-separated on the CLI)'),
    nodeId: z.string().min(1).nullable().default(null).describe('node name in welcome; default hostname'),
    tickMs: z.number().int().min(5).max(5000).default(50).describe('tick length in ms'),
    maxTickMs: z.number().int().min(5).max(60000).default(1000).describe('upper bound of the adaptive (stretched) tick'),
    roomChatBudget: z.number().min(1).default(60).describe('delivered chat messages per second per room'),
    maxBodyBytes: z.number().int().min(1).max(16384).default(300).describe('chat body size limit (bytes)'),
    maxFrameBytes: z.number().int().min(1024).max(1048576).default(16384).describe('largest inbound frame; bigger drops the connection (uWS, no close frame: 1006)'),
    maxRoomsPerConn: z.number().int().min(1).default(8).describe('rooms one connection may join'),
    chatRate: z.number().positive().default(1).describe('chat messages per second per user'),
    chatBurst: z.number().min(1).default(3).describe('chat burst per user'),
    likeRate: z.number().positive().default(10).describe('likes per second per user'),
    likeBurst: z.number().min(1).default(10).describe('like burst per user'),
    joinRate: z.number().positive().default(5).describe('joins per second per user'),
    joinBurst: z.number().min(1).default(5).describe('join burst per user'),
    connectRate: z.number().min(0).default(50).describe('WebSocket upgrades per second per client IP (0 = no limit)'),
    connectBurst: z.number().min(1).default(200).describe('upgrade burst per client IP'),
    trustProxy: z
      .preprocess(commaList, z.array(z.string().refine(isCidr, 'must be an IP address or CIDR (e.g. 10.0.0.0/8)')))
      .default([])
      .describe('proxies (IPs/CIDRs, comma-separated) whose X-Forwarded-For / Forwarded name the client address'),
    maxConnsPerUser: z.number().int().min(1).default(10).describe('sockets one user may hold per node; over it the upgrade gets 429'),
    tokenGraceSec: z.number().int().min(1).max(3600).default(5).describe('an unrefreshed connection is closed (4010) at most this long after its token exp'),
    badFrameLimit: z.number().int().min(1).default(10).describe('bad (or over-budget) frames per minute before close 4008'),
    frameRate: z.number().positive().default(20).describe('inbound frames per second per connection (every op, pings too)'),
    frameBurst: z.number().min(1).default(40).describe('inbound frame burst per connection'),
    shedLagMs: z
      .number()
      .int()
      .min(0)
      .default(250)
      .describe('event-loop lag (ms) over which inbound chat and likes are shed before decoding (RATE_LIMITED); 0 = never'),
    modRate: z.number().positive().default(2).describe('moderator kick/mute ops per second per user'),
    modBurst: z.number().min(1).default(10).describe('moderator op burst per user'),
    maxModerationEntries: z.number().int().min(1).default(100000).describe('bans, and mutes, kept per worker (over it the oldest go first)'),
    history: z.number().int().min(1).default(1000).describe('log entries kept per room for recovery'),
    maxBackpressure: z.number().int().min(1024).default(65536).describe('per-socket send buffer before frames are skipped (bytes)'),
    compressThreshold: z.number().int().min(0).default(1024).describe('z frames only for encoded frames over this size (bytes)'),
    fanoutShardMembers: z
      .number()
      .int()
      .min(0)
      .default(500)
      .describe("a room's local members per fan-out shard (the unit a frame's writes are split at between event-loop turns); 0 = one shard"),
    fanoutSliceMs: z
      .number()
      .int()
      .min(0)
      // 400, not 250: a pass over 18k members (~180-250 ms of writes) then stays one turn, as a bare
      // uWS publish is; split in two, its frames waited for both turns (p99 ~450-560 ms against
      // ~230-260 ms at 271-530 msgs/s; bench/notes/big-room.md, session 19). Storms shrink it (sliceFor).
      .default(400)
      .describe("wall time a frame's writes may hold the event loop per turn: shards that fit at the measured cost go in one turn; 0 = one shard per turn"),
    idleTimeoutSec: z.number().int().min(8).max(960).default(240).describe('close sockets silent this long (welcome.hb); uWS pings a silent socket before'),
    membersPushMs: z.number().int().min(100).default(2000).describe('interval of members pushes (only on change)'),
    membersPushMaxMs: z
      .number()
      .int()
      .min(100)
      .default(30000)
      .describe('longest gap between members pushes: the gap grows with the room (membersPushMs per 10k members)'),
    kickSeconds: z.number().int().min(0).default(60).describe('rejoin ban after a kick without seconds'),
    muteSeconds: z.number().int().min(1).default(300).describe('mute length when a mute gives no seconds'),
    drainMs: z.number().int().min(0).default(5000).describe('max jittered reconnectMs in bye while draining'),
    blocklist: z
      .preprocess(commaList, z.array(z.string().min(1)))
      .default([])
      .describe('words refused in chat (case-insensitive; comma-separated on the CLI)'),
    reviewUrl: z.url().nullable().default(null).describe('review webhook, called once per tick with all candidate chat'),
    reviewTimeoutMs: z.number().int().min(10).max(10000).default(300).describe('review webhook timeout'),
    reviewFailOpen: z.boolean().default(true).describe('when the webhook fails: true = let chat through, false = reject it'),
    eventsUrl: z.url().nullable().default(null).describe('business events webhook: batched, signed POSTs of appends, member churn and room start/end'),
    eventsSecret: z.string().min(16).nullable().default(null).describe('HMAC-SHA256 key of the events signature header, at least 16 chars; absent = the API key'),
    eventsStream: z
      .string()
      .regex(/^[A-Za-z0-9_.:{}-]{1,128}$/)
      .nullable()
      .default(null)
      .describe('Redis stream key that also gets every business event (read it with XREADGROUP); needs --redis or --redis-cluster'),
    eventsStreamMaxLen: z.number().int().min(100).default(1_000_000).describe('events stream bound (XADD MAXLEN ~): older entries are trimmed'),
    eventsStreamTtl: z.number().int().min(60).default(7 * 86400).describe('seconds the events stream lives after its last event'),
    eventsFlushMs: z.number().int().min(10).max(60000).default(1000).describe('business events are sent (and member churn summed) once per this interval'),
    eventsBatch: z.number().int().min(1).max(10000).default(500).describe('most events in one webhook POST or stream round trip'),
    eventsQueue: z.number().int().min(100).default(100_000).describe('events held per sink while it is slow or down; beyond it new events are dropped (counted)'),
    eventsTimeoutMs: z.number().int().min(100).max(60000).default(5000).describe('events webhook timeout; a failed batch is retried with backoff, in order'),
    apiRate: z.number().positive().default(1000).describe('API messages per second per room before 429'),
    metricsTopRooms: z.number().int().min(0).max(1000).default(20).describe('rooms with their own room_members series'),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino log level'),
  })
  .strict()
  .refine((c) => c.redis === null || c.redisCluster === null, { message: 'give --redis or --redis-cluster, not both' })
  .refine((c) => c.eventsStream === null || c.redis !== null || c.redisCluster !== null, { message: '--events-stream needs --redis or --redis-cluster' })
  .refine((c) => c.eventsUrl === null || c.eventsSecret !== null || c.apiKey !== null || c.secret === null, {
    message: '--events-url needs --events-secret or --api-key to sign with',
  });

export type Config = Readonly<z.infer<typeof configSchema>>;
export type ConfigInput = z.input<typeof configSchema>;

/** Whether the bus runs on Redis (one server or a Cluster) rather than in memory. */
export function usesRedis(c: Config): boolean {
  return c.redis !== null || c.redisCluster !== null;
}
