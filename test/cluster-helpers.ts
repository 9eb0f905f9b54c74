// Multi-process harness for the cluster tests: real `roomcast start --workers N --redis URL`
// supervisors spawned from the built CLI (dist/), their pino stdout parsed line by line, plain
// HTTP on fresh connections (so the kernel spreads requests over the workers), and checks of
// the ordering contract over what real ws clients received.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';
import { mintToken, type MintOptions } from '../src/auth/tokens.js';
import WebSocket from 'ws';
import { Client, connect, sleep, wsUrl, type ConnectOptions, type Frame } from './helpers.js';

/** The built CLI the tests spawn (CLUSTER_TEST_CLI points elsewhere, e.g. at a mutated build). */
export const CLI = process.env.CLUSTER_TEST_CLI ?? fileURLToPath(new URL('../dist/src/cli.js', import.meta.url));
export const SECRET = 'cluster-test-secret-0123456789abcdef0123';
export const API_KEY = 'cluster-test-api-key';

export type LogLine = Record<string, unknown> & { msg?: string };

/** Supervisors this module started and that are still running, for cleanup at exit. */
const running = new Set<Supervisor>();
process.once('exit', () => {
  for (const s of running) s.killNow();
});

/** The parent pid of `pid` (Linux /proc), or undefined when it is gone. */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** Whether a process with this pid exists (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before the cluster tests`);
}

export interface StartOptions {
  workers?: number;
  /** One Redis URL, or… */
  redis?: string;
  /** …a Redis Cluster's seed nodes. */
  redisCluster?: string;
  /** Extra CLI arguments (e.g. ['--chat-rate', '100']). */
  args?: string[];
  /** Name used in test failure messages. */
  name?: string;
}

/** One `roomcast start` supervisor process and what it logged. */
export class Supervisor {
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  port = 0;
  exitCode: number | null | undefined;
  exitSignal: NodeJS.Signals | null | undefined;
  readonly exited: Promise<void>;
  private waiters: Array<() => void> = [];

  private constructor(
    readonly proc: ChildProcess,
    readonly workers: number,
    readonly name: string,
  ) {
    let buf = '';
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.onLine(line);
      }
    });
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (chunk: string) => this.stderr.push(chunk));
    this.exited = new Promise((resolve) =>
      proc.once('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        running.delete(this);
        resolve();
        this.wake();
      }),
    );
  }

  static async start(o: StartOptions): Promise<Supervisor> {
    assertBuilt();
    const workers = o.workers ?? 2;
    const args = [
      CLI, 'start',
      '--workers', String(workers),
      ...(o.redisCluster ? ['--redis-cluster', o.redisCluster] : ['--redis', o.redis ?? '']),
      '--port', '0',
      '--host', '127.0.0.1',
      '--secret', SECRET,
      '--api-key', API_KEY,
      '--log-level', 'info',
      ...(o.args ?? []),
    ];
    // The CLI reads ROOMCAST_* variables (and rejects unknown ones): only the arguments configure it here.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ROOMCAST_')));
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    const s = new Supervisor(proc, workers, o.name ?? `supervisor ${proc.pid}`);
    running.add(s);
    try {
      const started = await s.waitLog((l) => l.msg === 'roomcast supervisor started', 15_000);
      s.port = Number(started.port);
      await s.waitReady(30_000);
    } catch (err) {
      await s.destroy();
      throw err;
    }
    return s;
  }

  get pid(): number {
    return this.proc.pid!;
  }

  private onLine(line: string): void {
    if (!line.trim()) return;
    let parsed: LogLine;
    try {
      parsed = JSON.parse(line) as LogLine;
    } catch {
      parsed = { msg: line, raw: true };
    }
    this.logs.push(parsed);
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits for a log line matching `pred` (including lines logged before the call, from index `from`). */
  async waitLog(pred: (l: LogLine) => boolean, timeoutMs = 5000, from = 0): Promise<LogLine> {
    let hit: LogLine | undefined;
    await this.waitUntil(() => (hit = this.logs.slice(from).find(pred)) !== undefined, timeoutMs, 'a log line');
    return hit!;
  }

  /** Waits until `cond()` holds, re-checked after every log line. */
  async waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (cond()) return;
      if (this.exitCode !== undefined) throw new Error(`${this.name} exited (${this.exitCode ?? this.exitSignal}) while waiting for ${what}; ${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: timed out waiting for ${what}; ${this.tail()}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** `worker ready` lines, in order. */
  readyLogs(): Array<{ worker: string; pid: number; index: number }> {
    const out: Array<{ worker: string; pid: number; index: number }> = [];
    this.logs.forEach((l, index) => {
      if (l.msg === 'worker ready' && typeof l.worker === 'string' && typeof l.pid === 'number') out.push({ worker: l.worker, pid: l.pid, index });
    });
    return out;
  }

  /** The current pid of each worker id (the latest `worker ready`). */
  workerPids(): Map<string, number> {
    const m = new Map<string, number>();
    for (const r of this.readyLogs()) m.set(r.worker, r.pid);
    return m;
  }

  waitReady(timeoutMs: number): Promise<void> {
    return this.waitUntil(() => this.workerPids().size >= this.workers, timeoutMs, `${this.workers} workers ready`);
  }

  /** Log lines whose msg matches. */
  count(msg: string): number {
    return this.logs.filter((l) => l.msg === msg).length;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.exitCode === undefined) this.proc.kill(signal);
  }

  /**
   * SIGKILLs the workers that are still this supervisor's children (checked by parent pid, so a
   * recycled pid is never hit), then the supervisor. Orphaned workers drain on their own.
   */
  killNow(): void {
    if (this.exitCode !== undefined) return;
    for (const pid of this.workerPids().values()) {
      if (parentOf(pid) !== this.pid) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    this.proc.kill('SIGKILL');
  }

  async destroy(): Promise<void> {
    this.killNow();
    await Promise.race([this.exited, sleep(3000)]);
  }

  tail(n = 15): string {
    const lines = this.logs.slice(-n).map((l) => JSON.stringify(l));
    return `last logs:\n${lines.join('\n')}${this.stderr.length ? `\nstderr: ${this.stderr.join('').slice(-2000)}` : ''}`;
  }
}

/** Prints the supervisors' last log lines after a failed test (they are the server side of the story). */
export function dumpLogsOnFailure(sups: () => Array<Supervisor | undefined>, lines = 40): void {
  afterEach((ctx) => {
    if (ctx.task.result?.state !== 'fail') return;
    for (const s of sups()) if (s) console.error(`--- ${s.name} (port ${s.port}) ---\n${s.tail(lines)}`);
  });
}

/** Kills supervisors (and their workers) without throwing; for afterAll. */
export async function destroyAll(...sups: Array<Supervisor | undefined>): Promise<void> {
  await Promise.all(sups.map((s) => s?.destroy().catch(() => undefined)));
}

// ---- HTTP ----

export interface HttpResult {
  status: number;
  text: string;
  json: unknown;
}

/** One request on a fresh TCP connection (no keep-alive: the kernel picks a worker each time). */
export function http(port: number, method: string, path: string, body?: unknown, auth = true): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { connection: 'close' };
    if (auth) headers.authorization = `Bearer ${API_KEY}`;
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.byteLength);
    }
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, text, json });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Polls `fn` until it returns a truthy value; throws with the last value after the deadline. */
export async function pollUntil<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(everyMs);
  }
}

/** `n` consecutive requests (each on a fresh connection) all answered with `status`. */
export async function allStatus(port: number, path: string, status: number, n = 8): Promise<boolean> {
  for (let i = 0; i < n; i++) {
    const r = await http(port, 'GET', path, undefined, false).catch(() => undefined);
    if (r?.status !== status) return false;
  }
  return true;
}

// ---- clients ----

export function token(o: MintOptions): Promise<string> {
  return mintToken(SECRET, o);
}

export interface Member {
  uid: string;
  client: Client;
  /** welcome.node, e.g. `vm/w1`. */
  node: string;
  /** The worker id part of welcome.node (`w1`). */
  worker: string;
  /** The port (supervisor) it connected to. */
  port: number;
}

/** Socket errors seen by clients (a ws error is otherwise swallowed once connected). */
export const socketErrors = new WeakMap<Client, Error>();

async function connectOnce(port: number, o: ConnectOptions): Promise<Client> {
  const ws = new WebSocket(wsUrl(port, o));
  const c = new Client(ws);
  ws.on('error', (err) => socketErrors.set(c, err));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
  });
  try {
    await c.op('welcome');
    if (o.room !== undefined) await c.waitFor((f) => (f.op === 'joined' && f.room === o.room) || f.op === 'error');
  } catch (err) {
    const sockErr = socketErrors.get(c);
    throw sockErr ? new Error(`${(err as Error).message}; socket error: ${sockErr.message}`, { cause: err }) : err;
  }
  return c;
}

/**
 * Like helpers.connect (welcome, and joined/error when a room is given). No retry: the
 * gateway upgrades synchronously, so a socket dropped right after the upgrade is a bug.
 */
export const connectClient = connectOnce;

/** Connects one member (token for `uid`), joining `o.room` in the upgrade when given. */
export async function member(port: number, uid: string, o: ConnectOptions & Partial<MintOptions> = {}): Promise<Member> {
  const t = await token({ uid, name: o.name, role: o.role, rooms: o.rooms });
  const client = await connectClient(port, { token: t, room: o.room, since: o.since, epoch: o.epoch, compress: o.compress });
  const welcome = client.frames.find((f) => f.op === 'welcome')!;
  const node = String(welcome.node);
  if (o.room !== undefined) {
    const j = client.frames.find((f) => (f.op === 'joined' && f.room === o.room) || f.op === 'error');
    if (j?.op !== 'joined') {
      client.ws.terminate();
      throw new Error(`${uid} could not join ${o.room}: ${JSON.stringify(j)}`);
    }
  }
  return { uid, client, node, worker: node.slice(node.lastIndexOf('/') + 1), port };
}

/**
 * Connects `count` members with uids `${prefix}<n>` and makes sure each of the `workers`
 * worker ids has at least `minPerWorker` of them: SO_REUSEPORT hashes connections by their
 * 4-tuple, so a member landing on an over-full worker is closed and connected again.
 */
export async function spreadMembers(
  port: number,
  prefix: string,
  count: number,
  o: ConnectOptions & Partial<MintOptions> & { workers?: number; minPerWorker?: number } = {},
): Promise<Member[]> {
  const workers = o.workers ?? 2;
  const min = o.minPerWorker ?? Math.max(1, Math.floor(count / workers / 2));
  const out: Member[] = [];
  const per = new Map<string, number>();
  const short = () => [...Array(workers).keys()].some((i) => (per.get(`w${i}`) ?? 0) < min);
  for (let attempts = 0; out.length < count; attempts++) {
    if (attempts > count * 20) throw new Error(`could not spread ${count} members over ${workers} workers: ${JSON.stringify([...per])}`);
    // A fresh uid per attempt: retries must not trip the per-user join rate limit.
    const m = await member(port, `${prefix}${attempts}`, o);
    const left = count - out.length;
    const needed = [...Array(workers).keys()].reduce((n, w) => n + Math.max(0, min - (per.get(`w${w}`) ?? 0)), 0);
    const helps = (per.get(m.worker) ?? 0) < min;
    if (short() && !helps && needed >= left) {
      // This slot is needed for an under-covered worker: try again.
      await closeMember(m);
      continue;
    }
    per.set(m.worker, (per.get(m.worker) ?? 0) + 1);
    out.push(m);
  }
  return out;
}

/**
 * Connects like a real client after its server went away: retries (every 50 ms, up to
 * `timeoutMs`) while the attempt is refused or reset, e.g. when it was queued on the dying
 * worker's listen socket.
 */
export async function reconnectMember(port: number, uid: string, o: ConnectOptions & Partial<MintOptions> = {}, timeoutMs = 5000): Promise<Member> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await member(port, uid, o);
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${uid}: reconnect failed after ${attempt} attempts: ${(err as Error).message}`);
      await sleep(50);
    }
  }
}

export async function closeMember(m: Member): Promise<void> {
  if (m.client.closeCode !== undefined) return;
  await Promise.race([m.client.close(), sleep(2000)]);
  if (m.client.closeCode === undefined) m.client.ws.terminate();
}

export async function closeAll(members: Iterable<Member>): Promise<void> {
  await Promise.all([...members].map((m) => closeMember(m).catch(() => undefined)));
}

export function byWorker(members: readonly Member[]): Map<string, Member[]> {
  const m = new Map<string, Member[]>();
  for (const x of members) m.set(x.worker, [...(m.get(x.worker) ?? []), x]);
  return m;
}

// ---- the ordering contract ----

export interface MsgLike {
  u: string;
  b: unknown;
  k: string;
  t?: number;
}

export interface StreamCheck {
  /** Every message received for the room, in order. */
  msgs: MsgLike[];
  /** seq range of each batch, in order. */
  ranges: Array<{ from: number; to: number; msgs: MsgLike[]; epoch: string }>;
  last: number;
}

/**
 * The room's batches as one stream: throws unless they are contiguous (`from` = previous
 * `to` + 1, starting at `startSeq` + 1 when given) and in one epoch.
 */
export function stream(frames: readonly Frame[], room: string, startSeq?: number, epoch?: string): StreamCheck {
  const ranges: StreamCheck['ranges'] = [];
  let prev = startSeq;
  for (const f of frames) {
    if (f.op !== 'batch' || f.room !== room) continue;
    const from = Number(f.from);
    const to = Number(f.to);
    if (epoch !== undefined && f.epoch !== epoch) throw new Error(`batch ${from}..${to} has epoch ${String(f.epoch)}, expected ${epoch}`);
    if (to < from) throw new Error(`batch with to ${to} < from ${from}`);
    if (prev !== undefined && from !== prev + 1) throw new Error(`gap or overlap: batch from ${from} after ${prev}`);
    prev = to;
    ranges.push({ from, to, msgs: (f.msgs as MsgLike[]) ?? [], epoch: String(f.epoch) });
  }
  return { msgs: ranges.flatMap((r) => r.msgs), ranges, last: prev ?? startSeq ?? 0 };
}

/** The batch (seq range) holding the message with this body, or undefined. */
export function rangeOf(s: StreamCheck, body: string): { from: number; to: number } | undefined {
  return s.ranges.find((r) => r.msgs.some((m) => m.b === body));
}

/** The last batch `to` of the room a client has seen. */
export function lastSeq(c: Client, room: string): number {
  let last = 0;
  for (const f of c.frames) if (f.op === 'batch' && f.room === room) last = Math.max(last, Number(f.to));
  return last;
}

export const key = (m: MsgLike) => `${m.k}|${m.u}|${typeof m.b === 'string' ? m.b : JSON.stringify(m.b)}`;

/** Sends chat and resolves with the reply frame (ack or error). */
export async function sendChat(c: Client, room: string, body: string, ref: number, timeoutMs = 5000): Promise<Frame> {
  c.send({ op: 'send', room, kind: 'chat', body, ref });
  return c.reply(ref, timeoutMs);
}

export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const p of (m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) have.set(p[1]!, p[2]!);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[4]);
  }
  return undefined;
}

export { Client, connect, sleep, type Frame };

/** A supervisor serving the ops routes on its own admin port (`--admin-port 0`), and that port. */
export async function startWithAdmin(redisUrl: string, workers?: number): Promise<{ sup: Supervisor; admin: number }> {
  const sup = await Supervisor.start({ workers, redis: redisUrl, args: ['--admin-port', '0'], name: 'node' });
  const admin = Number((await sup.waitLog((l) => l.msg === 'roomcast supervisor started')).adminPort);
  return { sup, admin };
}

/** The supervisor's node-wide /metrics, from its admin port. */
export async function scrapeAdmin(admin: number): Promise<string> {
  return (await http(admin, 'GET', '/metrics', undefined, false)).text;
}
