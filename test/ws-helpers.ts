// Extra helpers for the WebSocket/protocol suite (test/ws-*.test.ts). Everything here talks to
// real workers over real sockets; nothing reaches into the engine except to generate load.
import { createHmac } from 'node:crypto';
import { decode, encode } from '@msgpack/msgpack';
import WebSocket from 'ws';
import type { RoomcastNode } from '../src/node.js';
import { Client, connect, sleep, token, wsUrl, type ConnectOptions, type Frame } from './helpers.js';
import type { MintOptions } from '../src/auth/tokens.js';

// ---- identities ----

let counter = 0;
/** A user or room id unique within this test process (rate limits and bans are per user). */
export function uniq(prefix: string): string {
  return `${prefix}-${process.pid}-${++counter}`;
}

let refCounter = 1000;
export function nextRef(): number {
  return ++refCounter;
}

/** Sends `obj` with a fresh `ref` and resolves with the reply that echoes it. */
export async function request(c: Client, obj: Record<string, unknown>, timeoutMs = 5000): Promise<Frame> {
  const ref = nextRef();
  c.send({ ...obj, ref });
  return c.reply(ref, timeoutMs);
}

/** Connects a user (fresh token) without joining anything. */
export async function user(node: RoomcastNode, uid: string, o: Partial<MintOptions> & ConnectOptions = {}): Promise<Client> {
  const t = await token(node, { uid, name: o.name, role: o.role, rooms: o.rooms, ttlSec: o.ttlSec });
  return connect(node.port, { token: t, room: o.room, since: o.since, epoch: o.epoch, last: o.last, compress: o.compress });
}

/** Connects and joins `room` with a join op; returns the client and its `joined`. */
export async function member(
  node: RoomcastNode,
  uid: string,
  room: string,
  o: Partial<MintOptions> & ConnectOptions = {},
): Promise<{ c: Client; joined: Frame }> {
  const c = await user(node, uid, o);
  const joined = await request(c, { op: 'join', room });
  if (joined.op !== 'joined') throw new Error(`join failed: ${JSON.stringify(joined)}`);
  return { c, joined };
}

/** Connects and joins `n` members one after the other (deterministic join order). */
export async function members(
  node: RoomcastNode,
  n: number,
  prefix: string,
  room: string,
  o: Partial<MintOptions> & ConnectOptions = {},
): Promise<Array<{ c: Client; joined: Frame }>> {
  const out: Array<{ c: Client; joined: Frame }> = [];
  for (let i = 0; i < n; i++) out.push(await member(node, uniq(`${prefix}${i}`), room, o));
  return out;
}

export async function closeAll(...clients: Array<Client | undefined>): Promise<void> {
  await Promise.all(
    clients.map(async (c) => {
      if (!c || c.closeCode !== undefined) return;
      c.ws.close();
      await Promise.race([c.closed, sleep(1000)]);
    }),
  );
}

// ---- tokens crafted by hand ----

export const b64url = (x: string | Buffer): string => Buffer.from(x).toString('base64url');

/** A JWT built byte by byte: any header, any payload, HMAC with `hash` (or no signature). */
export function craftJwt(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  secret: string | undefined,
  hash: 'sha256' | 'sha384' | 'sha512' = 'sha256',
): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  if (secret === undefined) return `${input}.`;
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`;
}

export const nowSec = (): number => Math.floor(Date.now() / 1000);

// ---- frames ----

/** Encodes `obj` and replaces the bytes of the (unique) string `marker` with `bytes` of equal length. */
export function encodeWithBytes(obj: unknown, marker: string, bytes: Uint8Array): Uint8Array {
  const out = encode(obj);
  const m = Buffer.from(marker);
  if (m.byteLength !== bytes.byteLength) throw new Error('replacement must have the marker length');
  const at = Buffer.from(out).indexOf(m);
  if (at < 0) throw new Error('marker not found');
  out.set(bytes, at);
  return out;
}

/** Frames received after index `from` (exclusive of earlier ones). */
export function framesAfter(c: Client, pred: (f: Frame) => boolean): Frame[] {
  const i = c.frames.findIndex(pred);
  return i < 0 ? [] : c.frames.slice(i + 1);
}

/** Problems with a run of batch frames: every batch must start right after the previous one. */
export function gaps(batches: readonly Frame[], after?: number): string[] {
  const out: string[] = [];
  let prev = after;
  for (const b of batches) {
    const from = b.from as number;
    const to = b.to as number;
    if (!(Number.isInteger(from) && Number.isInteger(to) && from <= to)) out.push(`bad range ${from}..${to}`);
    if (prev !== undefined && from !== prev + 1) out.push(`expected from ${prev + 1}, got ${from}..${to}`);
    prev = to;
  }
  return out;
}

/** A short description of a run of batches: count, first and last ranges, first problems. */
export function summarize(batches: readonly Frame[], after?: number): string {
  const r = batches.map((b) => `${String(b.from)}..${String(b.to)}`);
  const head = r.length > 10 ? `${r.slice(0, 4).join(' ')} ... ${r.slice(-4).join(' ')}` : r.join(' ');
  const problems = gaps(batches, after).slice(0, 3);
  return `${r.length} batches: ${head}${problems.length ? `; ${problems.join('; ')}` : ''}`;
}

/** The plain encoded size of a decoded server frame (without the harness's markers). */
export function plainSize(f: Frame): number {
  const { viaZ: _z, textFrame: _t, ...rest } = f;
  return encode(rest).byteLength;
}

// ---- waiting ----

export async function waitUntil(pred: () => boolean, timeoutMs = 5000, what = 'condition', stepMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(stepMs);
  }
}

/** The reply echoing `ref`; on timeout, fails with a compact summary (no payload dumps). */
export async function replyTo(c: Client, ref: number, timeoutMs = 5000): Promise<Frame> {
  const find = () => c.frames.find((f) => f.ref === ref);
  await waitUntil(() => find() !== undefined || c.closeCode !== undefined, timeoutMs, `the reply to ref ${ref}`).catch(() => undefined);
  const hit = find();
  if (hit) return hit;
  const ops = c.frames.slice(-20).map((f) => (f.op === 'batch' ? `batch ${String(f.from)}..${String(f.to)}` : String(f.op)));
  throw new Error(`no reply to ref ${ref} within ${timeoutMs} ms (closed: ${String(c.closeCode)}); last frames: ${ops.join(', ')}`);
}

/** Resolves once the client has received nothing for `quietMs` (or `maxMs` passed). */
export async function quiet(c: Client, quietMs = 300, maxMs = 10_000): Promise<void> {
  const start = Date.now();
  let n = c.frames.length;
  let since = Date.now();
  while (Date.now() - start < maxMs) {
    await sleep(25);
    if (c.frames.length !== n) {
      n = c.frames.length;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return;
  }
}

/** Expects no frame matching `pred` within `ms`. */
export async function expectNone(c: Client, pred: (f: Frame) => boolean, ms: number): Promise<void> {
  const start = c.frames.length;
  await sleep(ms);
  const hit = c.frames.slice(start).find(pred);
  if (hit) throw new Error(`unexpected frame ${JSON.stringify(hit)}`);
}

// ---- HTTP ----

/** Attempts an upgrade that should be refused; resolves with the HTTP status, headers and body. */
export function refusedUpgrade(
  port: number,
  o: ConnectOptions = {},
  rawQuery?: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(rawQuery === undefined ? wsUrl(port, o) : `ws://127.0.0.1:${port}/ws?${rawQuery}`);
    ws.once('open', () => {
      ws.close();
      reject(new Error('upgrade unexpectedly accepted'));
    });
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    ws.once('error', () => undefined);
  });
}

export async function getText(port: number, path: string): Promise<{ status: number; body: string; headers: Headers }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text(), headers: res.headers };
}

/** Sum of a Prometheus metric's samples whose labels include every `labels` pair. */
export async function metric(port: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const { body } = await getText(port, '/metrics');
  let sum = 0;
  for (const line of body.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const lbl = m[2] ?? '';
    if (!Object.entries(labels).every(([k, v]) => lbl.includes(`${k}="${v}"`))) continue;
    sum += Number(m[3]);
  }
  return sum;
}

// ---- sockets ----

/** Stops reading from the socket (the kernel buffers fill, then the server's). */
export function pauseReading(c: Client): void {
  (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
}

export function resumeReading(c: Client): void {
  (c.ws as unknown as { _socket: { resume(): void } })._socket.resume();
}

/** A member that only counts and checks batches, keeping no payloads (for floods). */
export class CountingMember {
  batches = 0;
  bytes = 0;
  lastTo: number | undefined;
  gaps = 0;
  pongs = 0;
  ready: Promise<void>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.bytes += data.byteLength;
      const f = decode(data) as Frame;
      if (f.op === 'joined') this.lastTo = f.seq as number;
      if (f.op === 'pong') this.pongs++;
      if (f.op !== 'batch') return;
      this.batches++;
      if (this.lastTo !== undefined && f.from !== this.lastTo + 1) this.gaps++;
      this.lastTo = f.to as number;
    });
    this.ready = new Promise((resolve, reject) => {
      ws.once('error', reject);
      const onJoined = (data: Buffer) => {
        if ((decode(data) as Frame).op === 'joined') {
          ws.off('message', onJoined);
          resolve();
        }
      };
      ws.on('message', onJoined);
    });
  }

  static async join(node: RoomcastNode, uid: string, room: string): Promise<CountingMember> {
    const t = await token(node, { uid });
    const m = new CountingMember(new WebSocket(wsUrl(node.port, { token: t, room })));
    await m.ready;
    return m;
  }

  close(): void {
    this.ws.close();
  }
}

// ---- memory ----

export { forceGc } from './helpers.js';


export { sleep };
