// Chooses the bus once at startup: Redis streams when Redis (or a Redis Cluster) is
// configured, else in-memory.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { usesRedis, type Config } from '../config/schema.js';
import type { Bus, BusEvents } from './bus.js';
import { MemoryBus } from './memory-bus.js';
import { parseClusterNodes } from './redis/connection.js';
import { RedisStreamsBus } from './redis-streams-bus.js';

export interface BusDeps {
  log: Logger;
  events?: BusEvents;
  /** The worker's effective tick: the feed reads at most once per tick while entries flow. */
  paceMs?: () => number;
  /** How long a nudged read may wait for this worker's own next read (its tick's). */
  nudgeWaitMs?: () => number;
}

export function createBus(config: Config, workerName: string, deps: BusDeps): Bus {
  const historyTtlMs = config.historyTtl * 1000;
  if (!usesRedis(config)) return new MemoryBus({ history: config.history, historyTtlMs });
  return new RedisStreamsBus({
    target: config.redisCluster !== null ? { cluster: parseClusterNodes(config.redisCluster) } : { url: config.redis! },
    history: config.history,
    historyTtlMs,
    partitions: config.busPartitions,
    prefix: config.redisPrefix,
    waitReplicas: config.redisWaitReplicas,
    // A fresh id per process start: a restarted worker never inherits a dead one's counts.
    workerId: `${workerName}:${process.pid}:${randomBytes(3).toString('hex')}`,
    readPaceMs: deps.paceMs,
    nudgeWaitMs: deps.nudgeWaitMs,
    events: deps.events,
    log: deps.log.child({ mod: 'bus' }),
  });
}
