// The Lua scripts of the room log. Each touches only keys of one partition (one hash tag), so
// it runs on a Redis Cluster as it does on one Redis, and counts as one round trip.
import type { ChainableCommander, Cluster, Redis, Result } from 'ioredis';

// KEYS: meta, log, partition stream, partition nudge stream. ARGV: history, payload,
// epoch-if-new, ttlMs, partMaxLen, room, urgent ('1': nudge the partition's paced readers),
// nudgeMaxLen.
// Returns {epoch, seq}.
const APPEND = `
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  -- A new log (first append, or the old one expired or was lost): nothing of an older epoch stays.
  epoch = ARGV[3]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 's', 0)
end
local seq = redis.call('HINCRBY', KEYS[1], 's', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], seq .. '-1', 'd', ARGV[2], 'e', epoch)
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'r', ARGV[6], 's', seq, 'e', epoch, 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
if ARGV[7] == '1' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*', 'r', ARGV[6], 'i', id)
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
end
return {epoch, seq}
`;

// The room's epoch and last seq from its meta hash; a room without one gets its epoch now
// (with the TTL, so a room that is only looked at does not stay), kept by its first append.
const READ_META = `
local function readMeta(key, newEpoch, ttl)
  local epoch = redis.call('HGET', key, 'e')
  if not epoch then
    redis.call('HSET', key, 'e', newEpoch, 's', 0)
    redis.call('PEXPIRE', key, ttl)
    return newEpoch, 0
  end
  return epoch, tonumber(redis.call('HGET', key, 's') or '0')
end
`;

// KEYS: meta, partition stream. ARGV: epoch-if-new, ttlMs.
// Returns {epoch, seq, last id of the partition stream}: atomic, so every entry of the room
// after seq lies after that id (where a new reader of the partition starts).
const HEAD = `${READ_META}
local epoch, seq = readMeta(KEYS[1], ARGV[1], ARGV[2])
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
local id = '0-0'
if last then id = last[1] end
return {epoch, seq, id}
`;

// KEYS: meta, log. ARGV: epoch-if-new, ttlMs, afterSeq, limit, history.
// Returns {epoch, head, oldest, entries}; atomic, so the three agree.
const RANGE = `${READ_META}
local epoch, head = readMeta(KEYS[1], ARGV[1], ARGV[2])
local oldest = head + 1
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
if first then oldest = tonumber(string.match(first[1], '^(%d+)')) end
-- MAXLEN ~ trims whole stream nodes lazily; entries past \`history\` do not count (as in MemoryBus).
local floor = head - tonumber(ARGV[5]) + 1
if oldest < floor then oldest = floor end
local from = tonumber(ARGV[3]) + 1
if from < oldest then from = oldest end
local entries = {}
if tonumber(ARGV[4]) > 0 and from <= head then
  entries = redis.call('XRANGE', KEYS[2], string.format('%d-1', from), '+', 'COUNT', ARGV[4])
end
return {epoch, head, oldest, entries}
`;

/** The commands defineCommand adds (ioredis cannot type them itself). */
export interface Scripts<Context extends { type: 'default' | 'pipeline' }> {
  rcAppend(
    meta: string,
    log: string,
    stream: string,
    nudge: string,
    history: number,
    payload: Buffer,
    newEpoch: string,
    ttlMs: number,
    partMax: number,
    room: string,
    urgent: '1' | '0',
    nudgeMax: number,
  ): Result<unknown, Context>;
  rcHead(meta: string, stream: string, newEpoch: string, ttlMs: number): Result<unknown, Context>;
  rcRangeBuffer(meta: string, log: string, newEpoch: string, ttlMs: number, after: number, limit: number, history: number): Result<unknown, Context>;
}

export type Client = (Redis | Cluster) & Scripts<{ type: 'default' }>;
export type Batch = ChainableCommander & Scripts<{ type: 'pipeline' }>;

export function defineScripts(c: Redis | Cluster): Client {
  c.defineCommand('rcAppend', { numberOfKeys: 4, lua: APPEND });
  c.defineCommand('rcHead', { numberOfKeys: 2, lua: HEAD });
  c.defineCommand('rcRange', { numberOfKeys: 2, lua: RANGE });
  return c as Client;
}
