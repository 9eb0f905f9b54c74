import { MemoryBus } from '../src/bus/memory-bus.js';
import { busContract, CONTRACT_HISTORY } from './bus-contract.js';

busContract('MemoryBus', async () => {
  const bus = new MemoryBus({ history: CONTRACT_HISTORY });
  return { bus, cleanup: () => bus.close() };
});
