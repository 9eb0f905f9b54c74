import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { joinedClient, startTestNode } from './helpers.js';

describe('a chat round trip', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode();
  });
  afterAll(() => node.stop());

  it('delivers a chat message to every member in one batch, acked with its seq', async () => {
    const a = await joinedClient(node, 'alice', 'lobby', { name: 'Alice' });
    const b = await joinedClient(node, 'bob', 'lobby');
    a.send({ op: 'send', room: 'lobby', kind: 'chat', body: 'hello', ref: 1 });
    const ack = await a.reply(1);
    expect(ack).toMatchObject({ op: 'ack', shown: true });
    const batch = await b.op('batch');
    expect(batch).toMatchObject({ room: 'lobby', from: ack.seq, to: ack.seq });
    expect(batch.msgs).toEqual([expect.objectContaining({ u: 'alice', n: 'Alice', k: 'chat', b: 'hello' })]);
    await a.close();
    await b.close();
  });
});
