// Chooses the bus once at startup: Redis streams when a URL is configured, else in-memory.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { Bus } from './bus.js';
import { MemoryBus } from './memory-bus.js';
import { RedisStreamsBus } from './redis-streams-bus.js';

export function createBus(config: Config, workerName: string, log: Logger): Bus {
  if (config.redis === null) return new MemoryBus({ history: config.history });
  return new RedisStreamsBus({
    url: config.redis,
    history: config.history,
    prefix: config.redisPrefix,
    // A fresh id per process start: a restarted worker never inherits a dead one's counts.
    workerId: `${workerName}:${process.pid}:${randomBytes(3).toString('hex')}`,
    log: log.child({ mod: 'bus' }),
  });
}
