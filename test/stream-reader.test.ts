// The bus reader's pace on a real Redis: a nudge wakes a paced reader for an entry it has not
// read, and a nudge for an entry it already read (its own, read back at once; another worker's,
// read before the nudge came) does not: else its next read would block for whatever comes next
// and publish that alone. While the members storm a nudged read may wait a while (nudgeWaitMs).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineScripts } from '../src/bus/redis/scripts.js';
import { StreamReader, type StreamItem } from '../src/bus/redis/stream-reader.js';
import { RedisServer } from './redis-server.js';
import { holdsWithin as until, sleep } from './helpers.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await RedisServer.launch();
});
afterAll(async () => {
  await redis?.close();
});

/** A reader of stream `s` (nudges in `u`) whose reads come 4 s apart on the pace. */
async function pacedReader(nudgeWaitMs?: number) {
  const writer = new Redis(redis.url);
  const conn = defineScripts(new Redis(redis.url, { lazyConnect: true }));
  await conn.connect();
  const read: string[] = [];
  const reader = new StreamReader({
    conn,
    blockMs: 5000,
    paceMs: () => 4000,
    onItems: (_key, items: StreamItem[]) => read.push(...items.map(([, f]) => f[1]!.toString())),
    onReadDone: () => {},
    onError: () => {},
    onResumed: () => {},
    nudgeOf: (key) => (key === 's' ? 'u' : undefined),
    nudgeWaitMs: nudgeWaitMs === undefined ? undefined : () => nudgeWaitMs,
  });
  const close = async () => {
    conn.disconnect(); // ends the blocked wait, so close() need not wait it out
    await reader.close();
    writer.disconnect();
  };
  return { writer, reader, read, close };
}

describe('the paced reader and its nudges', () => {
  it('wakes for a nudge of an unread entry, not for one it already read', async () => {
    const { writer, reader, read, close } = await pacedReader();
    try {
      const e1 = (await writer.xadd('s', '*', 'b', 'one'))!;
      reader.add('s', '0-0');
      reader.start();
      // The first read takes e1 and starts the pace: the reader then waits on the nudge stream.
      expect(await until(() => read.includes('one'), 2000)).toBe(true);
      await sleep(100);
      // A nudge for e1, which it has read: the pace holds, so plain e2 waits for it.
      await writer.xadd('u', '*', 'r', 'room', 'i', e1);
      await sleep(100);
      const e2 = (await writer.xadd('s', '*', 'b', 'two'))!;
      expect(await until(() => read.includes('two'), 1000)).toBe(false);
      // A nudge for e2, not read yet: read at once.
      await writer.xadd('u', '*', 'r', 'room', 'i', e2);
      expect(await until(() => read.includes('two'), 1000)).toBe(true);
      expect(read).toEqual(['one', 'two']);
    } finally {
      await close();
    }
  });

  it('reads a nudged entry within nudgeWaitMs, not at once, while the members storm', async () => {
    const { writer, reader, read, close } = await pacedReader(500);
    try {
      await writer.xadd('s', '*', 'b', 'one');
      reader.add('s', '0-0');
      reader.start();
      expect(await until(() => read.includes('one'), 2000)).toBe(true);
      await sleep(100);
      const e2 = (await writer.xadd('s', '*', 'b', 'gift'))!;
      await writer.xadd('u', '*', 'r', 'room', 'i', e2);
      expect(await until(() => read.includes('gift'), 250)).toBe(false);
      expect(await until(() => read.includes('gift'), 1500)).toBe(true);
    } finally {
      await close();
    }
  });
});
