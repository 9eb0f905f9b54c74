import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../src/bus/memory-bus.js';
import { body, busContract, CONTRACT_HISTORY, Recorder } from './bus-contract.js';

busContract('MemoryBus', async () => {
  const bus = new MemoryBus({ history: CONTRACT_HISTORY });
  return { bus, cleanup: () => bus.close() };
});

describe('MemoryBus room lifetime', () => {
  it('forgets a log historyTtl after its last append: a new epoch, reported to a follower', async () => {
    let now = 1_000_000;
    const bus = new MemoryBus({ history: CONTRACT_HISTORY, historyTtlMs: 60_000, now: () => now });
    const rec = new Recorder();
    const epochs: string[] = [];
    await bus.start({ ...rec, onEntries: rec.onEntries.bind(rec), onControl: rec.onControl.bind(rec), onEpoch: (_room, e) => epochs.push(e) });
    const head = await bus.follow('show');
    await bus.append([{ room: 'show', entry: body() }]);
    now += 59_999;
    expect(await bus.head('show')).toEqual({ epoch: head.epoch, seq: 1 });
    now += 1;
    const after = await bus.range('show', 0, 10);
    expect(after.epoch).not.toBe(head.epoch);
    expect(after).toMatchObject({ entries: [], head: 0 });
    expect(epochs).toEqual([after.epoch]);
    expect(await bus.append([{ room: 'show', entry: body() }])).toEqual([{ epoch: after.epoch, seq: 1 }]);
    await bus.close();
  });
});
