// Shedding under overload (docs/protocol.md §8): while the worker's event loop lags over
// shedLagMs, chat and likes are refused unread (RATE_LIMITED to a sender that gave a ref,
// nothing to one that did not), counted in roomcast_shed_total; pings, joins and API messages
// are served as usual. The node runs in this process, so the test stalls its loop for real.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, metricValue, sleep, startTestNode } from './helpers.js';
import { closeAll, member, nextRef, request, uniq } from './ws-helpers.js';

/** Blocks this process's event loop (server included) for `ms`. */
function stall(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    /* busy */
  }
}

async function metrics(node: RoomcastNode): Promise<string> {
  return (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
}

describe('shedding while the loop lags', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, shedLagMs: 30, apiKey: API_KEY });
  });
  afterAll(() => node.stop());

  it('exports roomcast_shed_total{kind} at 0 on a fresh node', async () => {
    const m = await metrics(node);
    for (const kind of ['chat', 'like']) expect(m).toContain(`roomcast_shed_total{kind="${kind}"} 0`);
  });

  it('chat and likes sent into a stall are shed; a ping sent with them is answered; all is well after', async () => {
    const room = uniq('shed');
    const { c } = await member(node, uniq('shedder'), room);
    const { c: watcher } = await member(node, uniq('watcher'), room);
    const m0 = await metrics(node);
    const chatRef = nextRef();
    const likeRef = nextRef();
    const pingRef = nextRef();
    c.send({ op: 'send', room, kind: 'chat', body: 'into the stall', ref: chatRef });
    c.send({ op: 'send', room, kind: 'like', ref: likeRef });
    c.send({ op: 'send', room, kind: 'like' });
    c.send({ op: 'ping', ref: pingRef });
    stall(150); // the frames wait in the server's socket buffer while the loop is busy
    expect(await c.reply(chatRef)).toMatchObject({ op: 'error', code: 'RATE_LIMITED', retryMs: expect.any(Number) });
    expect(await c.reply(likeRef)).toMatchObject({ op: 'error', code: 'RATE_LIMITED' });
    expect(await c.reply(pingRef)).toMatchObject({ op: 'pong' });
    const m1 = await metrics(node);
    const delta = (name: string, labels: Record<string, string>) => metricValue(m1, name, labels) - metricValue(m0, name, labels);
    expect(delta('roomcast_shed_total', { kind: 'chat' })).toBe(1);
    expect(delta('roomcast_shed_total', { kind: 'like' })).toBe(2);
    expect(delta('roomcast_messages_received_total', { kind: 'like', result: 'rate_limited' })).toBe(2);
    // Nothing shed reached the room; the ref-less like got no reply at all.
    await sleep(100);
    expect(watcher.batches(room)).toEqual([]);
    expect(c.frames.filter((f) => f.op === 'error' && f.ref === undefined)).toEqual([]);
    // Once the loop is back to normal, the same sends go through.
    expect(await request(c, { op: 'send', room, kind: 'chat', body: 'after the stall' })).toMatchObject({ op: 'ack', shown: true });
    await watcher.waitFor((f) => f.op === 'batch' && (f.msgs as Array<{ b: string }>).some((m) => m.b === 'after the stall'));
    await closeAll(c, watcher);
  });

  it('an API message posted into a stall is not shed', async () => {
    const room = uniq('shed-api');
    const { c } = await member(node, uniq('viewer'), room);
    // A raw HTTP request written in full before the stall, so the server reads it after.
    const sock = net.connect(node.port, '127.0.0.1');
    await new Promise((resolve) => sock.once('connect', resolve));
    const answer = new Promise<string>((resolve) => sock.once('data', (d) => resolve(d.toString('latin1'))));
    const body = JSON.stringify({ kind: 'gift', body: 'rocket' });
    sock.write(
      `POST /v1/rooms/${room}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    stall(150);
    expect(await answer).toMatch(/^HTTP\/1.1 202/);
    sock.destroy();
    await c.waitFor((f) => f.op === 'batch' && (f.msgs as Array<{ k: string }>).some((m) => m.k === 'gift'));
    await closeAll(c);
  });
});
