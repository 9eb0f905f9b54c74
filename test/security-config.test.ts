// Issue 14, unsafe defaults: guests limited to guestRooms (finding 7), dev mode kept on
// loopback and visible in metrics (finding 8), weak secrets and API keys refused (finding 9).
import { spawnSync } from 'node:child_process';
import { createConnection } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig, ConfigError } from '../src/config/load.js';
import { startNode, type RoomcastNode } from '../src/node.js';
import { CLI } from './cluster-helpers.js';
import { API_KEY, connect, SECRET, startTestNode } from './helpers.js';
import { closeAll, metric, request } from './ws-helpers.js';

/** Whether a TCP connection to host:port is accepted. */
function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Runs `roomcast start` with `args` and returns its exit code and stderr (it must refuse to start). */
function refusedStart(args: string[]): { status: number | null; stderr: string } {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ROOMCAST_')));
  const r = spawnSync(process.execPath, [CLI, 'start', '--port', '0', '--log-level', 'silent', ...args], { env, encoding: 'utf8', timeout: 15_000 });
  return { status: r.status, stderr: r.stderr };
}

describe('finding 7: guests read only guestRooms', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, secret: SECRET, allowGuests: true, guestRooms: ['public-*', 'lobby'] });
  });
  afterAll(() => node.stop());

  it('a guest joins the listed rooms and gets FORBIDDEN elsewhere, by op and by the upgrade query', async () => {
    const g = await connect(node.port, {});
    expect((await request(g, { op: 'join', room: 'public-1' })).op).toBe('joined');
    expect((await request(g, { op: 'join', room: 'lobby' })).op).toBe('joined');
    for (const room of ['private-1', 'lobby2', 'public']) {
      expect(await request(g, { op: 'join', room, since: 0 }), room).toMatchObject({ op: 'error', code: 'FORBIDDEN' });
    }
    const viaQuery = await connect(node.port, { room: 'private-2', since: 0 });
    expect(viaQuery.frames.find((f) => f.op === 'joined')).toBeUndefined();
    expect(await viaQuery.op('error')).toMatchObject({ code: 'FORBIDDEN' });
    await closeAll(g, viaQuery);
  });

  it('allowGuests without guestRooms refuses to start, with a message naming the option', () => {
    expect(() => buildConfig({ secret: SECRET, allowGuests: true })).toThrow(/guestRooms.*--guest-rooms/);
    const r = refusedStart(['--secret', SECRET, '--allow-guests']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--guest-rooms/);
  });
});

describe('finding 8: dev mode stays on loopback', () => {
  let dev: RoomcastNode;
  let prod: RoomcastNode;
  const logs: string[] = [];
  let devOnHost: RoomcastNode;
  beforeAll(async () => {
    const log = pino({ level: 'warn' }, new Writable({ write: (chunk: Buffer, _e, cb) => (logs.push(chunk.toString()), cb()) }));
    // No host given: what `npm start` does.
    [dev, prod, devOnHost] = await Promise.all([
      startNode(buildConfig({ port: 0, logLevel: 'silent' })),
      startTestNode({ secret: SECRET }),
      startNode(buildConfig({ port: 0, host: '127.0.0.1' }), { log }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([dev?.stop(), prod?.stop(), devOnHost?.stop()]);
  });

  it('without --host, dev mode listens on 127.0.0.1 only (not on other addresses)', async () => {
    expect(await reachable('127.0.0.1', dev.port)).toBe(true);
    // 127.0.0.2 is loopback too, but only a socket bound to every address accepts it.
    expect(await reachable('127.0.0.2', dev.port)).toBe(false);
  });

  it('exports roomcast_dev_mode: 1 in dev mode, 0 with a secret', async () => {
    const text = await (await fetch(`http://127.0.0.1:${dev.port}/metrics`)).text();
    expect(text).toMatch(/^roomcast_dev_mode 1$/m);
    expect(await metric(prod.port, 'roomcast_dev_mode')).toBe(0);
    expect(await (await fetch(`http://127.0.0.1:${prod.port}/metrics`)).text()).toMatch(/^roomcast_dev_mode 0$/m);
  });

  it('an explicit --host in dev mode is obeyed and warned about loudly', async () => {
    expect(await reachable('127.0.0.1', devOnHost.port)).toBe(true);
    expect(logs.join('')).toMatch(/DEV MODE ON --host 127\.0\.0\.1/);
  });
});

describe('finding 9: weak secrets and API keys are refused outside dev mode', () => {
  it('a secret under 32 bytes or an API key under 16 chars is a config error', () => {
    expect(() => buildConfig({ secret: 'x'.repeat(31) })).toThrow(ConfigError);
    expect(() => buildConfig({ secret: 'é'.repeat(15) })).toThrow(/32 bytes/); // 30 bytes of UTF-8
    expect(() => buildConfig({ secret: SECRET, apiKey: 'x'.repeat(15) })).toThrow(/16 characters/);
    expect(buildConfig({ secret: 'x'.repeat(32), apiKey: 'x'.repeat(16) }).secret).toHaveLength(32);
    expect(buildConfig({ apiKey: 'k' }).apiKey).toBe('k'); // dev mode: a short key is fine on localhost
  });

  it('roomcast start refuses them with exit code 2 and a clear message', () => {
    const short = refusedStart(['--secret', 's3cret']);
    expect(short.status).toBe(2);
    expect(short.stderr).toMatch(/secret must be at least 32 bytes/);
    const key = refusedStart(['--secret', SECRET, '--api-key', 'k3y']);
    expect(key.status).toBe(2);
    expect(key.stderr).toMatch(/apiKey must be at least 16 characters/);
  });

  it('a node with long keys serves the API', async () => {
    const node = await startTestNode({ secret: SECRET, apiKey: API_KEY });
    const res = await fetch(`http://127.0.0.1:${node.port}/v1/rooms`, { headers: { authorization: `Bearer ${API_KEY}` } });
    expect(res.status).toBe(200);
    await node.stop();
  });
});
