// A replay frame is encoded once for every member recovering the same range (a reconnect wave),
// keyed by room, epoch and seq range, and only the most recent frames are kept.
import { decode } from '@msgpack/msgpack';
import { describe, expect, it } from 'vitest';
import type { LogEntry } from '../src/bus/bus.js';
import { packEntry } from '../src/bus/entry.js';
import { ReplayFrames } from '../src/engine/replay-frames.js';
import { encodeBatch } from '../src/tick/batch.js';

const entry = (seq: number): LogEntry => ({ ...packEntry({ msgs: [{ u: 'u', k: 'system', b: `m${seq}`, t: 1 }], likes: 0, ts: 1 }), seq });
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => entry(from + i));

describe('replay frames', () => {
  it('the same range, room and epoch give the same encoded frame; its bytes are the batch', () => {
    const frames = new ReplayFrames();
    const a = frames.get('r', 'e1', range(1, 3));
    expect(frames.get('r', 'e1', range(1, 3))).toBe(a); // the second member reuses the first one's
    expect(Buffer.from(a.plain).equals(Buffer.from(encodeBatch('r', 'e1', range(1, 3))))).toBe(true);
    expect(decode(a.plain)).toMatchObject({ op: 'batch', room: 'r', epoch: 'e1', from: 1, to: 3 });
    for (const other of [frames.get('r', 'e2', range(1, 3)), frames.get('s', 'e1', range(1, 3)), frames.get('r', 'e1', range(1, 2))]) {
      expect(other).not.toBe(a);
    }
  });

  it('keeps only the most recent frames', () => {
    const frames = new ReplayFrames();
    const first = frames.get('r', 'e', range(1, 1));
    for (let i = 2; i <= 64; i++) frames.get('r', 'e', range(i, i));
    expect(frames.get('r', 'e', range(1, 1))).toBe(first); // 64 kept
    for (let i = 65; i <= 129; i++) frames.get('r', 'e', range(i, i));
    expect(frames.get('r', 'e', range(1, 1))).not.toBe(first); // evicted, encoded again
  });
});
