// 503 UNAVAILABLE from the server API when the room log or the control channel cannot be
// written (PROTOCOL §6), and /readyz: a real node over a MemoryBus whose writes can fail.
import { afterAll, beforeAll, afterEach, describe, expect, it } from 'vitest';
import type { AppendItem, ControlCommand, RoomHead } from '../src/bus/bus.js';
import { MemoryBus } from '../src/bus/memory-bus.js';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, joinedClient, startTestNode, SECRET, type Client } from './helpers.js';
import { api, expectError, postShown } from './api-helpers.js';

class FlakyBus extends MemoryBus {
  /** Rooms whose appends fail; '*' = all. */
  failing = new Set<string>();
  controlDown = false;
  headDown = false;
  down = false;

  override async append(items: readonly AppendItem[]): Promise<Array<RoomHead | Error>> {
    const ok = items.filter((it) => !this.fails(it.room));
    const heads = await super.append(ok);
    return items.map((it) => (this.fails(it.room) ? new Error('append failed') : heads[ok.indexOf(it)]!));
  }

  override async control(cmd: ControlCommand): Promise<void> {
    if (this.controlDown) throw new Error('control channel down');
    return super.control(cmd);
  }

  override async head(room: string): Promise<RoomHead> {
    if (this.headDown) throw new Error('log unreachable');
    return super.head(room);
  }

  override available(): boolean {
    return !this.down && super.available();
  }

  private fails(room: string): boolean {
    return this.failing.has('*') || this.failing.has(room);
  }
}

describe('the API when the bus fails', () => {
  let node: RoomcastNode;
  let bus: FlakyBus;
  const clients: Client[] = [];
  beforeAll(async () => {
    bus = new FlakyBus({ history: 100 });
    node = await startTestNode({ apiKey: API_KEY, secret: SECRET, tickMs: 20 }, { bus });
    clients.push(await joinedClient(node, 'a', 'un-a'), await joinedClient(node, 'b', 'un-b'));
  });
  afterEach(() => {
    bus.failing.clear();
    bus.controlDown = false;
    bus.headDown = false;
    bus.down = false;
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await node?.stop();
  });

  it('answers 503 UNAVAILABLE to a message whose append failed, and logs nothing', async () => {
    const before = await postShown(node, 'un-a', { kind: 'system', body: 'before' });
    bus.failing.add('un-a');
    expectError(await api(node, 'POST', '/v1/rooms/un-a/messages', { kind: 'system', body: 'lost' }), 503, 'UNAVAILABLE');
    expectError(await api(node, 'POST', '/v1/rooms/un-a/messages', { kind: 'note', body: 'lost too' }), 503, 'UNAVAILABLE', 'normal priority');
    bus.failing.clear();
    expect(await postShown(node, 'un-a', { kind: 'system', body: 'after' })).toBe(before + 1);
  });

  it('answers 503 UNAVAILABLE at once while the bus is unavailable', async () => {
    bus.down = true;
    expectError(await api(node, 'POST', '/v1/rooms/un-a/messages', { kind: 'system', body: 'x' }), 503, 'UNAVAILABLE');
  });

  it('broadcast: 503 when every append failed, 202 {rooms, failed} when some did', async () => {
    bus.failing.add('*');
    expectError(await api(node, 'POST', '/v1/broadcast', { kind: 'system', body: 'x' }), 503, 'UNAVAILABLE');
    bus.failing.clear();
    bus.failing.add('un-b');
    const res = await api(node, 'POST', '/v1/broadcast', { kind: 'system', body: 'half' });
    expect({ status: res.status, body: res.body }).toEqual({ status: 202, body: { rooms: 2, failed: 1 } });
  });

  it('kick and mute: 503 UNAVAILABLE when the control channel is down', async () => {
    bus.controlDown = true;
    expectError(await api(node, 'POST', '/v1/rooms/un-a/kick', { uid: 'a' }), 503, 'UNAVAILABLE', 'kick');
    expectError(await api(node, 'POST', '/v1/rooms/un-a/mute', { uid: 'a', seconds: 5 }), 503, 'UNAVAILABLE', 'mute');
    expect(clients[0]!.frames.some((f) => f.op === 'kicked' || f.op === 'muted')).toBe(false);
  });

  it('GET /v1/rooms/:room: 503 UNAVAILABLE (not 500) when the room log cannot be read', async () => {
    await postShown(node, 'un-idle', { kind: 'system', body: 'x' }); // a room nobody follows here
    expect((await api(node, 'GET', '/v1/rooms/un-idle')).status).toBe(200);
    bus.headDown = true;
    expectError(await api(node, 'GET', '/v1/rooms/un-idle'), 503, 'UNAVAILABLE');
  });

  it('/readyz is 503 {ready:false} while the bus is unavailable, /healthz stays 200', async () => {
    expect((await api(node, 'GET', '/readyz', undefined, { key: null })).body).toEqual({ ready: true });
    bus.down = true;
    const res = await api(node, 'GET', '/readyz', undefined, { key: null });
    expect({ status: res.status, body: res.body }).toEqual({ status: 503, body: { ready: false } });
    expect((await api(node, 'GET', '/healthz', undefined, { key: null })).status).toBe(200);
  });
});
