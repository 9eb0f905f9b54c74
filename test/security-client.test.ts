// Issue 14, the token and the SDK: the token may travel in Sec-WebSocket-Protocol instead of
// the URL that proxies log, and the SDK sends it there (finding 13); the SDK refuses to inflate
// a `z` frame into more than MAX_INFLATED_BYTES (finding 12).
import { createServer, Socket, type Server } from 'node:net';
import { deflateRawSync } from 'node:zlib';
import { decode, encode } from '@msgpack/msgpack';
import WebSocket, { WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as sdkConnect, type RoomcastClient } from '../src/client/index.js';
import { inflateWithStream } from '../src/client/inflate.js';
import type { RoomcastNode } from '../src/node.js';
import { SECRET, startTestNode, token } from './helpers.js';
import { rawHttp, upgradeRequest } from './fuzz-helpers.js';
import { uniq } from './ws-helpers.js';

/** A TCP proxy in front of the node that keeps each connection's request line, as an access log would. */
async function loggingProxy(target: number): Promise<{ port: number; lines: string[]; server: Server }> {
  const lines: string[] = [];
  const server = createServer((client: Socket) => {
    const upstream = new Socket();
    upstream.connect(target, '127.0.0.1');
    let first = true;
    client.on('data', (d: Buffer) => {
      if (first) lines.push(d.toString('latin1').split('\r\n')[0]!);
      first = false;
      upstream.write(d);
    });
    upstream.on('data', (d) => client.write(d));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, lines, server };
}

function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => (cond() ? resolve() : Date.now() > end ? reject(new Error('timed out')) : setTimeout(tick, 10));
    tick();
  });
}

describe('finding 13: the token in Sec-WebSocket-Protocol', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, secret: SECRET });
  });
  afterAll(() => node?.stop());

  it('the server takes the token from the header and answers `roomcast`, never echoing the token', async () => {
    const uid = uniq('hdr');
    const t = await token(node, { uid });
    const ws = new WebSocket(`ws://127.0.0.1:${node.port}/ws`, ['roomcast', `roomcast.token.${t}`]);
    const welcome = await new Promise<Record<string, unknown>>((resolve, reject) => {
      ws.once('message', (d: Buffer) => resolve(decode(d) as Record<string, unknown>));
      ws.once('error', reject);
    });
    expect(welcome).toMatchObject({ op: 'welcome', uid });
    expect(ws.protocol).toBe('roomcast');
    ws.close();
    const raw = await rawHttp(node.port, upgradeRequest('/ws', `Sec-WebSocket-Protocol: roomcast, roomcast.token.${t}\r\n`));
    expect(raw.status).toBe(101);
    expect(raw.headers['sec-websocket-protocol']).toBe('roomcast');
  });

  it('a bad token in the header is 401, and the header wins over the query', async () => {
    const good = await token(node, { uid: uniq('q') });
    expect((await rawHttp(node.port, upgradeRequest('/ws', 'Sec-WebSocket-Protocol: roomcast, roomcast.token.not-a-jwt\r\n'))).status).toBe(401);
    expect((await rawHttp(node.port, upgradeRequest(`/ws?token=${good}`, 'Sec-WebSocket-Protocol: roomcast, roomcast.token.not-a-jwt\r\n'))).status).toBe(401);
    expect((await rawHttp(node.port, upgradeRequest(`/ws?token=${good}`))).status).toBe(101); // the query still works
  });

  it('the SDK sends the token in the header: a proxy access log never sees it', async () => {
    const proxy = await loggingProxy(node.port);
    const uid = uniq('sdk');
    const t = await token(node, { uid });
    const rc: RoomcastClient = sdkConnect({ url: `ws://127.0.0.1:${proxy.port}/ws`, token: t, WebSocket });
    const room = uniq('hdr-room');
    const joined = await rc.join(room);
    expect(joined.room).toBe(room);
    await rc.close();
    proxy.server.close();
    expect(proxy.lines.length).toBeGreaterThan(0);
    for (const line of proxy.lines) {
      expect(line).toMatch(/^GET \/ws/);
      expect(line).not.toContain(t);
      expect(line).not.toContain('token=');
    }
  });
});

describe('finding 12: z frames inflate to at most MAX_INFLATED_BYTES', () => {
  let wss: WebSocketServer;
  let port: number;
  // A hostile server: a welcome, then a `z` frame that inflates a few KB into 20 MB.
  const bomb = { op: 'z', data: deflateRawSync(encode({ op: 'batch', room: 'r', epoch: 'e', from: 1, to: 1, msgs: [{ u: 'x', k: 'chat', b: 'A'.repeat(20 * 1024 * 1024), t: 1 }] })) };
  beforeAll(async () => {
    expect(bomb.data.byteLength).toBeLessThan(100_000);
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    port = (wss.address() as { port: number }).port;
    wss.on('connection', (ws) => {
      ws.send(encode({ op: 'welcome', sid: 's', uid: 'u', node: 'evil', hb: 60 }));
      ws.on('message', (d: Buffer) => {
        const f = decode(d) as { op: string; ref?: number; room?: string };
        if (f.op === 'join') {
          ws.send(encode({ op: 'joined', ref: f.ref, room: f.room, epoch: 'e', seq: 0, members: 1 }));
          ws.send(encode(bomb));
        }
      });
    });
  });
  afterAll(() => new Promise<void>((resolve) => wss.close(() => resolve())));

  for (const [name, inflate] of [
    ['node:zlib (the default in Node)', undefined],
    ['DecompressionStream (browsers)', inflateWithStream],
  ] as const) {
    it(`${name}: a bomb is a PROTOCOL error, never a 20 MB message`, async () => {
      const rc = sdkConnect({ url: `ws://127.0.0.1:${port}/ws`, token: 'x.y.z', WebSocket, compress: true, joinInUrl: false, ...(inflate ? { inflate } : {}) });
      const errors: Array<{ code: string; message: string }> = [];
      let batches = 0;
      rc.on('error', (e) => errors.push(e as { code: string; message: string }));
      rc.on('batch', () => batches++);
      await rc.join('r');
      await until(() => errors.length > 0 || batches > 0);
      expect(batches).toBe(0);
      expect(errors[0]).toMatchObject({ code: 'PROTOCOL' });
      expect(errors[0]!.message).toMatch(/inflate/);
      await rc.close();
    });
  }
});
