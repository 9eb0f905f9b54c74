// Test harness: real roomcast workers on port 0 and real `ws` clients speaking MessagePack.
import { decode, encode } from '@msgpack/msgpack';
import WebSocket from 'ws';
import { inflateRawSync } from 'node:zlib';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { buildConfig } from '../src/config/load.js';
import type { ConfigInput } from '../src/config/schema.js';
import { mintToken, type MintOptions } from '../src/auth/tokens.js';
import { startNode, type NodeDeps, type RoomcastNode } from '../src/node.js';

export type Frame = Record<string, unknown> & { op: string };

/** A production-size secret and API key (roomcast refuses shorter ones outside dev mode). */
export const SECRET = 'roomcast-test-secret-0123456789abcdef';
export const API_KEY = 'roomcast-test-api-key';
/** For tests that flood on purpose: lifts the per-connection inbound frame budget. */
export const NO_FRAME_BUDGET = { frameRate: 1_000_000, frameBurst: 1_000_000 } as const;

export async function startTestNode(overrides: Partial<ConfigInput> = {}, deps: NodeDeps = {}): Promise<RoomcastNode> {
  // Shedding off unless a test asks for it: these nodes share the event loop with the test
  // code, whose own busy stretches would otherwise refuse chat at random (test/ws-shed.test.ts).
  const config = buildConfig({ port: 0, host: '127.0.0.1', logLevel: 'silent', shedLagMs: 0, ...overrides });
  return startNode(config, deps);
}

export function token(node: RoomcastNode, o: MintOptions): Promise<string> {
  return mintToken(node.secret, o);
}

export class Client {
  readonly frames: Frame[] = [];
  readonly rawFrames: Buffer[] = [];
  private waiters: Array<() => void> = [];
  closeCode: number | undefined;
  closed: Promise<number>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.rawFrames.push(data);
      let f = decode(data) as Frame;
      if (f.op === 'z') f = { ...(decode(inflateRawSync(f.data as Uint8Array)) as Frame), viaZ: true };
      if (!isBinary) f = { ...f, textFrame: true };
      this.frames.push(f);
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code) => {
        this.closeCode = code;
        resolve(code);
        for (const w of this.waiters.splice(0)) w();
      }),
    );
  }

  send(obj: unknown): void {
    this.ws.send(encode(obj));
  }

  sendRaw(data: Uint8Array | string, binary = true): void {
    this.ws.send(data, { binary });
  }

  /** Waits for the first frame (from the start of the connection) matching `pred`. */
  async waitFor(pred: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.frames.find(pred);
      if (hit) return hit;
      if (this.closeCode !== undefined) throw new Error(`closed (${this.closeCode}) before a matching frame; got ${this.describe()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; frames so far: ${this.describe()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  op(op: string, extra: (f: Frame) => boolean = () => true, timeoutMs?: number): Promise<Frame> {
    return this.waitFor((f) => f.op === op && extra(f), timeoutMs);
  }

  /** The reply (ack/joined/left/error/pong) to the frame sent with `ref`. */
  reply(ref: number, timeoutMs?: number): Promise<Frame> {
    return this.waitFor((f) => f.ref === ref, timeoutMs);
  }

  batches(room?: string): Frame[] {
    return this.frames.filter((f) => f.op === 'batch' && (room === undefined || f.room === room));
  }

  close(): Promise<number> {
    this.ws.close();
    return this.closed;
  }

  private describe(): string {
    return JSON.stringify(this.frames.slice(-8), (_k, v) => (v instanceof Uint8Array ? `<${v.byteLength} bytes>` : v));
  }
}

export interface ConnectOptions {
  token?: string;
  room?: string;
  since?: number;
  epoch?: string;
  /** Recent log entries to get on joining (`last` query parameter). */
  last?: number | string;
  compress?: boolean;
}

export function wsUrl(port: number, o: ConnectOptions = {}): string {
  const q = new URLSearchParams();
  if (o.token !== undefined) q.set('token', o.token);
  if (o.room !== undefined) q.set('room', o.room);
  if (o.since !== undefined) q.set('since', String(o.since));
  if (o.epoch !== undefined) q.set('epoch', o.epoch);
  if (o.last !== undefined) q.set('last', String(o.last));
  if (o.compress) q.set('compress', 'deflate');
  return `ws://127.0.0.1:${port}/ws?${q}`;
}

/** Connects and waits for `welcome` (and `joined` when a room is given). */
export async function connect(port: number, o: ConnectOptions = {}): Promise<Client> {
  const ws = new WebSocket(wsUrl(port, o));
  const c = new Client(ws);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
  });
  await c.op('welcome');
  if (o.room !== undefined) await c.waitFor((f) => (f.op === 'joined' && f.room === o.room) || f.op === 'error');
  return c;
}

/** Opens a connection expecting the upgrade to be refused; resolves with the HTTP status. */
export function upgradeStatus(port: number, o: ConnectOptions = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(port, o));
    ws.once('open', () => {
      ws.close();
      reject(new Error('upgrade unexpectedly accepted'));
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
    });
    ws.once('error', () => undefined);
  });
}

export async function joinedClient(node: RoomcastNode, uid: string, room: string, extra: Partial<MintOptions> & ConnectOptions = {}): Promise<Client> {
  const t = await token(node, { uid, name: extra.name, role: extra.role, rooms: extra.rooms });
  return connect(node.port, { token: t, room, compress: extra.compress });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 10 ms: true once it holds, false if `ms` pass first (for "not yet" checks too). */
export async function holdsWithin(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

/** Sum of a metric's samples whose labels include every `labels` pair. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ([-+0-9.eE]+|NaN|\+Inf)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum += Number(m[3]);
  }
  return sum;
}

let gcFn: (() => void) | undefined;
/** Full GC (exposed at run time), so RSS reflects live memory rather than garbage. */
export function forceGc(): void {
  if (!gcFn) {
    v8.setFlagsFromString('--expose_gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
  gcFn();
}
