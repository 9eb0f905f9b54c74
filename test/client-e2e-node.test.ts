// The SDK against real roomcast workers, over Node's `ws`: a round trip through the default
// transport, a server restart on the same port (new epoch: the SDK must surface
// recovered:false, get a token for the new node and carry on by itself), and a resume the
// server recovers with a replay.
import { decode } from '@msgpack/msgpack';
import { inflateRawSync } from 'node:zlib';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Batch, type ClientEvents, type RoomcastClient } from '../src/client/index.js';
import type { SocketLike } from '../src/client/transport.js';
import type { RoomcastNode } from '../src/node.js';
import { startTestNode, token } from './helpers.js';

function next<K extends keyof ClientEvents>(c: RoomcastClient, event: K, pred: (p: ClientEvents[K]) => boolean = () => true, ms = 8000): Promise<ClientEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out waiting for ${String(event)}`));
    }, ms);
    const off = c.on(event, (p) => {
      if (!pred(p)) return;
      clearTimeout(timer);
      off();
      resolve(p);
    });
  });
}

const bodies = (bs: Batch[]) => bs.flatMap((b) => b.msgs.map((m) => m.b));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `ws` sockets that reset their TCP connection as soon as the server says `bye`. Only so that
 * the test can restart a node on the same port at once: a connection the server closes
 * leaves its side in TIME_WAIT, and uWS then cannot listen on that port again for ~60 s.
 * The SDK still sees `bye`, then the connection drop, exactly as with a real drain.
 */
function resetOnBye(url: string): SocketLike {
  const ws = new WebSocket(url);
  ws.on('message', (data: Buffer) => {
    let f = decode(data) as { op: string; data?: Uint8Array };
    if (f.op === 'z' && f.data) f = decode(inflateRawSync(f.data)) as { op: string };
    if (f.op === 'bye') (ws as unknown as { _socket?: { resetAndDestroy?: () => void } })._socket?.resetAndDestroy?.();
  });
  return ws as unknown as SocketLike;
}

/** A `ws` socket that hides the frames `drop` picks, as a lossy path would. */
class LossySocket implements SocketLike {
  onopen: SocketLike['onopen'] = null;
  onmessage: SocketLike['onmessage'] = null;
  onclose: SocketLike['onclose'] = null;
  onerror: SocketLike['onerror'] = null;
  private readonly ws: WebSocket;

  constructor(url: string, drop: (f: { op: string; msgs?: Array<{ b: unknown }> }) => boolean) {
    this.ws = new WebSocket(url);
    this.ws.binaryType = 'arraybuffer';
    this.ws.onopen = (e) => this.onopen?.(e);
    this.ws.onmessage = (e) => {
      if (!drop(decode(new Uint8Array(e.data as ArrayBuffer)) as { op: string })) this.onmessage?.({ data: e.data });
    };
    this.ws.onclose = (e) => this.onclose?.({ code: e.code, reason: e.reason });
    this.ws.onerror = (e) => this.onerror?.(e);
  }
  get binaryType(): string {
    return 'arraybuffer';
  }
  set binaryType(_v: string) {}
  get readyState(): number {
    return this.ws.readyState;
  }
  send(data: Uint8Array): void {
    this.ws.send(data);
  }
  close(code?: number, reason?: string): void {
    this.ws.close(code, reason);
  }
}

describe('SDK against a real server (Node, ws)', () => {
  const clients: RoomcastClient[] = [];
  const nodes: RoomcastNode[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(nodes.splice(0).map((n) => n.stop()));
  });

  it('delivers a message from one client to another (default transport, z frames)', async () => {
    const node = await startTestNode({ compressThreshold: 0 });
    nodes.push(node);
    const url = `http://127.0.0.1:${node.port}`; // http:// and no path: the SDK uses ws://…/ws
    const a = connect({ url, token: await token(node, { uid: 'alice', name: 'Alice' }) });
    const b = connect({ url, token: await token(node, { uid: 'bob' }), compress: true }); // every frame is a z frame
    clients.push(a, b);
    const ja = await a.join('lobby');
    const jb = await b.join('lobby');
    expect(ja).toMatchObject({ room: 'lobby', seq: 0 });
    expect(jb.epoch).toBe(ja.epoch);
    expect(a.state).toBe('open');
    expect(a.info?.uid).toBe('alice');

    const hello = next(b, 'batch', (x) => bodies([x]).includes('hello'));
    const ack = await a.send('lobby', 'hello');
    expect(ack).toEqual({ shown: true, seq: expect.any(Number) });
    const batch = await hello;
    expect(batch).toMatchObject({ room: 'lobby', epoch: ja.epoch, replay: false });
    expect(batch.from).toBeLessThanOrEqual(ack.seq!);
    expect(batch.to).toBeGreaterThanOrEqual(ack.seq!);
    expect(batch.msgs).toContainEqual(expect.objectContaining({ u: 'alice', n: 'Alice', k: 'chat', b: 'hello' }));

    const liked = next(b, 'batch', (x) => x.likes > 0);
    // No ref, no ack: two taps go out as one frame (count 2) and show up in the stream.
    await Promise.all([a.like('lobby'), a.like('lobby')]);
    expect((await liked).likes).toBe(2);
    const likedAgain = next(b, 'batch', (x) => x.likes > 0);
    expect(await a.like('lobby', { ack: true })).toMatchObject({ shown: true, seq: expect.any(Number) });
    expect((await likedAgain).likes).toBe(1);
    await expect(a.send('nowhere', 'x')).rejects.toMatchObject({ code: 'NOT_JOINED' });
    await expect(a.join('bad room')).rejects.toMatchObject({ code: 'BAD_ROOM' });
  });

  it('reconnects by itself after a restart on the same port and surfaces recovered:false', async () => {
    let node = await startTestNode({ drainMs: 200 });
    nodes.push(node);
    const port = node.port;
    const url = `ws://127.0.0.1:${port}/ws`;
    // Tokens come from the node that is up: a restarted dev-mode node has a new secret, so
    // the first reconnect is refused (401) and the SDK asks getToken for a new token.
    const minted: string[] = [];
    const getToken = (uid: string) => async () => {
      minted.push(uid);
      return token(node, { uid });
    };
    const opts = { url, transport: resetOnBye, backoffMaxMs: 800 };
    const a = connect({ ...opts, getToken: getToken('alice') });
    const b = connect({ ...opts, getToken: getToken('bob') });
    clients.push(a, b);
    const ja = await a.join('lobby');
    await b.join('lobby');
    const first = next(b, 'batch');
    await a.send('lobby', 'before');
    await first;

    const seenBye = next(b, 'bye');
    const resetA = next(a, 'reset');
    const resetB = next(b, 'reset');
    const rejoinedA = next(a, 'joined', (j) => j.resumed);
    const rejoinedB = next(b, 'joined', (j) => j.resumed);
    await node.stop();
    expect(await seenBye).toMatchObject({ reason: expect.any(String), reconnectMs: expect.any(Number) });
    node = await startTestNode({ port, drainMs: 200 });
    nodes.push(node);

    const rb = await resetB;
    expect(rb).toMatchObject({ room: 'lobby', reason: 'not-recovered', previousEpoch: ja.epoch });
    expect(rb.epoch).not.toBe(ja.epoch);
    expect(await resetA).toMatchObject({ room: 'lobby', reason: 'not-recovered' });
    expect(await rejoinedA).toMatchObject({ recovered: false });
    expect(await rejoinedB).toMatchObject({ recovered: false });
    expect(minted.filter((u) => u === 'bob').length).toBeGreaterThanOrEqual(2);
    expect(a.state).toBe('open');

    const again = next(b, 'batch', (x) => bodies([x]).includes('again'));
    await a.send('lobby', 'again');
    expect((await again).epoch).toBe(rb.epoch);
  });

  it('resumes after a dropped connection with recovered:true, replaying what it missed', async () => {
    const node = await startTestNode();
    nodes.push(node);
    const url = `ws://127.0.0.1:${node.port}/ws`;
    const sockets: WebSocket[] = [];
    let gate: Promise<void> = Promise.resolve();
    const transport = async (u: string) => {
      await gate; // holds b's reconnect until the test lets it through
      const ws = new WebSocket(u);
      sockets.push(ws);
      return ws as unknown as SocketLike;
    };
    const a = connect({ url, token: await token(node, { uid: 'ann' }) });
    const b = connect({ url, token: await token(node, { uid: 'ben' }), transport, backoffBaseMs: 20 });
    clients.push(a, b);
    await a.join('show');
    await b.join('show');
    const got: Batch[] = [];
    b.on('batch', (x) => got.push(x));
    const first = next(b, 'batch');
    await a.send('show', 'one');
    await first;

    let open!: () => void;
    gate = new Promise((r) => (open = r));
    const dropped = next(b, 'state', (s) => s.state === 'reconnecting');
    sockets[0]!.terminate();
    await dropped;
    await a.send('show', 'two');
    await a.send('show', 'three');
    const resumed = next(b, 'joined', (j) => j.resumed);
    open();
    expect(await resumed).toMatchObject({ room: 'show', recovered: true });
    await expect.poll(() => bodies(got)).toEqual(['one', 'two', 'three']);
    expect(got.slice(1).every((x) => x.replay)).toBe(true);
    const seqs = got.flatMap((x) => [x.from, x.to]);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y)); // in order, no overlap

    const live = next(b, 'batch', (x) => bodies([x]).includes('four'));
    await sleep(1000); // ann's chat bucket (1/s, burst 3) refills
    await a.send('show', 'four');
    expect((await live).replay).toBe(false);
    expect(bodies(got)).toEqual(['one', 'two', 'three', 'four']);
  });

  it('detects a seq gap on a live connection and recovers it from the server, exactly once', async () => {
    const node = await startTestNode();
    nodes.push(node);
    const url = `ws://127.0.0.1:${node.port}/ws`;
    let dropped = 0;
    const lossy = (u: string) =>
      new LossySocket(u, (f) => {
        const hit = f.op === 'batch' && dropped === 0 && (f.msgs ?? []).some((m) => m.b === 'two');
        if (hit) dropped++;
        return hit;
      });
    const a = connect({ url, token: await token(node, { uid: 'ann' }) });
    const b = connect({ url, token: await token(node, { uid: 'ben' }), transport: lossy });
    clients.push(a, b);
    await a.join('stage');
    await b.join('stage');
    const got: Batch[] = [];
    b.on('batch', (x) => got.push(x));
    const gap = next(b, 'gap');
    for (const body of ['one', 'two', 'three']) {
      const seen = next(a, 'batch', (x) => bodies([x]).includes(body));
      await a.send('stage', body);
      await seen; // one tick per message, so each is its own live batch
    }
    expect(dropped).toBe(1);
    expect(await gap).toMatchObject({ room: 'stage' });
    await expect.poll(() => bodies(got)).toEqual(['one', 'two', 'three']);
    const seqs = got.flatMap((x) => [x.from, x.to]);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(b.rooms()[0]).toMatchObject({ room: 'stage', joined: true, seq: got.at(-1)!.to });
  });
});
