#!/usr/bin/env node
// Soak (`npm run soak`): a 2-worker roomcast cluster on a private redis-server, steady traffic
// (chat, likes, API messages) and member churn (disconnects, reconnects that recover with
// since/epoch) for --minutes (default 10). Every --sample seconds it records each process's RSS
// and open fds (/proc), the event loop lag (roomcast_nodejs_eventloop_lag_* from /metrics) and
// Redis used_memory (INFO memory). At the end it checks that nothing acknowledged was lost (one
// observer per room must have received every acked seq) and that RSS, fds, lag and Redis memory
// stayed flat; it writes bench/results/soak.json, prints a summary and exits non-zero on failure.
//
// Needs a built dist/ (npm run build) and redis-server on the PATH.
//
//   node bench/soak.mjs [--minutes 10] [--members 300] [--rooms 10] [--chat 20] [--likes 40]
//                       [--api 4] [--churn 3] [--sample 10] [--workers 2]
//                       [--max-rss-growth-mb 40] [--max-fd-growth 40] [--max-lag-ms 200]
//                       [--max-redis-growth-mb 16]
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decode, encode } from '@msgpack/msgpack';
import Redis from 'ioredis';
import WebSocket from 'ws';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(root, 'dist', 'src', 'cli.js');
const RESULTS = join(root, 'bench', 'results');

// ---- options ----

const DEFAULTS = {
  minutes: 10,
  members: 300,
  rooms: 10,
  chat: 20, // chat messages per second, whole cluster
  likes: 40, // likes per second
  api: 4, // API messages per second
  churn: 3, // member reconnects per second
  sample: 10, // seconds between samples
  workers: 2,
  'max-rss-growth-mb': 40, // per process, late window vs early window
  'max-fd-growth': 40,
  'max-lag-ms': 200, // worst sampled event loop lag (p99 when available)
  'max-redis-growth-mb': 16,
  out: join(RESULTS, 'soak.json'),
};

function parseArgs() {
  const o = { ...DEFAULTS };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    const k = a[i].replace(/^--/, '');
    if (k === 'help' || k === 'h') {
      console.log(`node bench/soak.mjs ${Object.entries(DEFAULTS).map(([k, v]) => `[--${k} ${v}]`).join(' ')}`);
      process.exit(0);
    }
    if (!(k in DEFAULTS)) throw new Error(`unknown option --${k}`);
    o[k] = k === 'out' ? a[++i] : Number(a[++i]);
    if (k !== 'out' && !Number.isFinite(o[k])) throw new Error(`--${k} needs a number`);
  }
  return o;
}

const o = parseArgs();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rand = (n) => Math.floor(Math.random() * n);

if (!existsSync(CLI)) {
  console.error(`soak: ${CLI} not found; run npm run build first`);
  process.exit(2);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// ---- processes ----

const SECRET = randomBytes(16).toString('hex');
const API_KEY = randomBytes(16).toString('hex');
const children = [];

function stopAll(signal = 'SIGTERM') {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
}
process.on('exit', () => stopAll('SIGKILL'));
process.on('SIGINT', () => {
  stopAll('SIGKILL');
  process.exit(130);
});

mkdirSync(RESULTS, { recursive: true });
const redisPort = await freePort();
const redisProc = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], {
  stdio: 'ignore',
});
redisProc.on('error', (err) => {
  console.error(`soak: cannot start redis-server (${err.message}); install it first`);
  process.exit(2);
});
children.push(redisProc);
const redisUrl = `redis://127.0.0.1:${redisPort}`;
/** Resolves once redis-server answers PING on `p`. */
async function redisUp(p) {
  for (let i = 0; i < 100; i++) {
    const pong = await new Promise((resolve) => {
      const s = net.connect(p, '127.0.0.1');
      s.on('error', () => resolve(false));
      s.on('data', (d) => {
        resolve(d.toString().startsWith('+PONG'));
        s.destroy();
      });
      s.on('connect', () => s.write('PING\r\n'));
    });
    if (pong) return;
    await sleep(100);
  }
  throw new Error('redis-server did not come up');
}
await redisUp(redisPort);
const redis = new Redis(redisUrl, { protocol: 2, maxRetriesPerRequest: 1 });
redis.on('error', () => undefined);

const port = await freePort();
const serverLog = createWriteStream(join(RESULTS, 'soak-server.log.tmp'));
const cluster = spawn(
  process.execPath,
  [
    CLI, 'start', '--workers', String(o.workers), '--redis', redisUrl, '--redis-prefix', `soak${randomBytes(3).toString('hex')}`,
    '--connect-rate', '0', '--port', String(port), '--host', '127.0.0.1', '--secret', SECRET, '--api-key', API_KEY, '--log-level', 'warn',
  ],
  { stdio: ['ignore', 'pipe', 'pipe'] },
);
children.push(cluster);
cluster.stdout.pipe(serverLog);
cluster.stderr.pipe(serverLog);
let clusterExited = false;
cluster.on('exit', (code, signal) => {
  clusterExited = true;
  if (!stopping) console.error(`soak: the cluster exited unexpectedly (${code ?? signal}); see bench/results/soak-server.log.tmp`);
});
let stopping = false;

const base = `http://127.0.0.1:${port}`;
const workerPids = () => {
  try {
    return readFileSync(`/proc/${cluster.pid}/task/${cluster.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number).sort((a, b) => a - b);
  } catch {
    return [];
  }
};
for (let i = 0; ; i++) {
  try {
    const r = await fetch(`${base}/readyz`);
    if (r.status === 200 && workerPids().length === o.workers) break;
  } catch {
    /* not listening yet */
  }
  if (i > 300 || clusterExited) throw new Error('the cluster did not become ready');
  await sleep(100);
}

// ---- clients ----

const b64 = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
function mint(uid) {
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: uid, exp: Math.floor(Date.now() / 1000) + 24 * 3600 })}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

/** Merged seq ranges. */
class Ranges {
  r = [];
  add(a, b) {
    this.r.push([a, b]);
    this.r.sort((x, y) => x[0] - y[0]);
    const out = [];
    for (const [x, y] of this.r) {
      const l = out[out.length - 1];
      if (l && x <= l[1] + 1) l[1] = Math.max(l[1], y);
      else out.push([x, y]);
    }
    this.r = out;
  }
  covers(s) {
    return this.r.some(([a, b]) => s >= a && s <= b);
  }
}

const rooms = Array.from({ length: o.rooms }, (_, i) => `soak-${i}`);
const acked = new Map(rooms.map((r) => [r, new Set()]));
const stats = { chatSent: 0, chatAcked: 0, chatSampled: 0, likesSent: 0, likesAcked: 0, apiSent: 0, apiAcked: 0, errors: {}, reconnects: 0, recovered: 0, unanswered: 0, unrecovered: 0, gaps: 0, closesUnexpected: 0, upgradeFailures: 0 };
const countError = (code) => (stats.errors[code] = (stats.errors[code] ?? 0) + 1);

class Member {
  ws = null;
  epoch = undefined;
  last = undefined; // last seq held contiguously
  ranges = null;
  refs = 1;
  pending = new Map();
  resyncing = false;
  constructor(uid, room, observer = false) {
    this.uid = uid;
    this.room = room;
    this.observer = observer;
    if (observer) this.ranges = new Ranges();
  }
  get open() {
    return this.ws?.readyState === WebSocket.OPEN && this.last !== undefined;
  }
  connect() {
    const q = new URLSearchParams({ token: mint(this.uid), room: this.room });
    const recovering = this.last !== undefined && this.epoch !== undefined;
    if (recovering) {
      q.set('since', String(this.last));
      q.set('epoch', this.epoch);
    }
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?${q}`);
    this.ws = ws;
    let joined = false;
    ws.on('error', () => undefined);
    ws.on('unexpected-response', () => {
      stats.upgradeFailures++;
      setTimeout(() => this.connect(), 1000);
    });
    ws.on('close', () => {
      // Requests in flight on a dropped socket get no reply: their outcome is unknown (not acked).
      for (const [ref, resolve] of this.pending) {
        this.pending.delete(ref);
        resolve({ op: 'disconnected' });
      }
      if (ws !== this.ws) return;
      if (!this.closing && !stopping) {
        stats.closesUnexpected++;
        setTimeout(() => this.connect(), 500);
      }
      this.closing = false;
    });
    ws.on('message', (data) => {
      const f = decode(data);
      switch (f.op) {
        case 'joined':
          if (!joined && recovering) {
            stats.reconnects++;
            if (f.recovered) stats.recovered++;
            else stats.unrecovered++;
          }
          joined = true;
          this.resyncing = false;
          if (!f.recovered || this.last === undefined || f.epoch !== this.epoch) this.last = f.seq;
          this.epoch = f.epoch;
          break;
        case 'batch': {
          if (this.ranges) this.ranges.add(f.from, f.to);
          if (this.last === undefined) break;
          if (f.to <= this.last) break; // duplicate (replay overlapping live)
          if (f.from > this.last + 1) {
            // A gap: re-join with since, as a real client does.
            if (!this.resyncing) {
              stats.gaps++;
              this.resyncing = true;
              ws.send(encode({ op: 'join', room: this.room, since: this.last, epoch: this.epoch }));
            }
            break;
          }
          this.last = f.to;
          break;
        }
        case 'ack':
        case 'error': {
          const p = this.pending.get(f.ref);
          if (!p) break;
          this.pending.delete(f.ref);
          p(f);
          break;
        }
      }
    });
  }
  request(op) {
    const ref = this.refs++;
    return new Promise((resolve) => {
      this.pending.set(ref, resolve);
      this.ws.send(encode({ ...op, ref }));
      setTimeout(() => {
        if (this.pending.delete(ref)) resolve({ op: 'timeout' });
      }, 15_000);
    });
  }
  drop() {
    this.closing = true;
    if (Math.random() < 0.5) this.ws.terminate();
    else this.ws.close(1000);
  }
}

const observers = rooms.map((room, i) => new Member(`observer-${i}`, room, true));
const members = Array.from({ length: o.members }, (_, i) => new Member(`member-${i}`, rooms[i % rooms.length]));
for (const m of [...observers, ...members]) {
  m.connect();
  await sleep(2);
}
for (let i = 0; [...observers, ...members].some((m) => !m.open); i++) {
  if (i > 300) throw new Error('members did not all join');
  await sleep(100);
}

// ---- traffic ----

const words = ['hello', 'wow', 'gg', 'nice', 'lol', '666', 'first', 'hi all', 'love it', '👏', 'encore', 'what song is this'];
const body = () => Array.from({ length: 1 + rand(8) }, () => words[rand(words.length)]).join(' ');
const pick = () => {
  for (let i = 0; i < 10; i++) {
    const m = members[rand(members.length)];
    if (m.open) return m;
  }
  return undefined;
};
const credit = { chat: 0, likes: 0, api: 0 };
const TICK = 100;
const traffic = setInterval(() => {
  credit.chat += (o.chat * TICK) / 1000;
  credit.likes += (o.likes * TICK) / 1000;
  credit.api += (o.api * TICK) / 1000;
  for (; credit.chat >= 1; credit.chat--) {
    const m = pick();
    if (!m) continue;
    stats.chatSent++;
    void m.request({ op: 'send', room: m.room, kind: 'chat', body: body() }).then((f) => {
      if (f.op === 'ack' && f.shown) {
        stats.chatAcked++;
        acked.get(m.room).add(f.seq);
      } else if (f.op === 'ack') stats.chatSampled++;
      else if (f.op === 'disconnected') stats.unanswered++;
      else countError(f.code ?? f.op);
    });
  }
  for (; credit.likes >= 1; credit.likes--) {
    const m = pick();
    if (!m) continue;
    stats.likesSent++;
    void m.request({ op: 'send', room: m.room, kind: 'like' }).then((f) => {
      if (f.op === 'ack') stats.likesAcked++;
      else if (f.op === 'disconnected') stats.unanswered++;
      else countError(f.code ?? f.op);
    });
  }
  for (; credit.api >= 1; credit.api--) {
    const room = rooms[rand(rooms.length)];
    stats.apiSent++;
    void fetch(`${base}/v1/rooms/${room}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'system', body: `announcement ${stats.apiSent}` }),
    })
      .then(async (r) => {
        const j = await r.json();
        if (r.status === 202 && j.shown) {
          stats.apiAcked++;
          acked.get(room).add(j.seq);
        } else countError(`http_${r.status}`);
      })
      .catch(() => countError('http_failed'));
  }
}, TICK);

const churn = setInterval(() => {
  for (let i = 0; i < o.churn; i++) {
    const m = pick();
    if (!m) continue;
    m.drop();
    setTimeout(() => m.connect(), 200 + rand(1800));
  }
}, 1000);

// ---- sampling ----

function procStats(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { pid, rssMb: Math.round((Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024) * 10) / 10, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return { pid, rssMb: NaN, fds: NaN };
  }
}

function metricSamples(text, name) {
  const out = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ([-+0-9.eE]+|NaN)$/.exec(line);
    if (m && m[1] === name) out.push({ labels: m[2] ?? '', value: Number(m[3]) });
  }
  return out;
}
const sum = (xs) => xs.reduce((a, x) => a + x.value, 0);

const samples = [];
const t0 = Date.now();
async function sample() {
  const text = await fetch(`${base}/metrics`).then((r) => r.text()).catch(() => '');
  const lagP99 = metricSamples(text, 'roomcast_nodejs_eventloop_lag_p99_seconds').filter((s) => !s.labels.includes('supervisor'));
  const lag = lagP99.length ? lagP99 : metricSamples(text, 'roomcast_nodejs_eventloop_lag_seconds').filter((s) => !s.labels.includes('supervisor'));
  const info = await redis.info('memory').catch(() => '');
  const s = {
    t: Math.round((Date.now() - t0) / 1000),
    supervisor: procStats(cluster.pid),
    workers: workerPids().map(procStats),
    lagMs: Math.round(Math.max(0, ...lag.map((x) => x.value)) * 10000) / 10,
    redisUsedMb: Math.round((Number(/used_memory:(\d+)/.exec(info)?.[1] ?? NaN) / 1048576) * 10) / 10,
    redisKeys: await redis.dbsize().catch(() => NaN),
    connections: sum(metricSamples(text, 'roomcast_connections')),
    restarts: sum(metricSamples(text, 'roomcast_worker_restarts_total')),
    drops: sum(metricSamples(text, 'roomcast_backpressure_drops_total')),
    clients: { ...stats, errors: { ...stats.errors } },
  };
  samples.push(s);
  console.log(
    `t=${String(s.t).padStart(4)}s  rss ${s.workers.map((w) => `${w.rssMb}`).join('/')} MB (sup ${s.supervisor.rssMb})  fds ${s.workers.map((w) => w.fds).join('/')}  ` +
      `lag ${s.lagMs} ms  redis ${s.redisUsedMb} MB ${s.redisKeys} keys  conns ${s.connections}  chat ${stats.chatAcked}/${stats.chatSent}  ` +
      `reconnects ${stats.reconnects} (recovered ${stats.recovered})`,
  );
}

console.log(
  `soak: ${o.workers} workers on :${port}, redis :${redisPort}; ${o.members} members + ${o.rooms} observers in ${o.rooms} rooms; ` +
    `chat ${o.chat}/s, likes ${o.likes}/s, API ${o.api}/s, churn ${o.churn}/s; ${o.minutes} min, sample every ${o.sample} s`,
);
const end = t0 + o.minutes * 60_000;
while (Date.now() < end && !clusterExited) {
  await sleep(Math.min(o.sample * 1000, Math.max(0, end - Date.now())));
  await sample();
}

// ---- wind down and check ----

clearInterval(traffic);
clearInterval(churn);
await sleep(5000); // in-flight acks and the last batches
const lost = {};
for (const [room, seqs] of acked) {
  const obs = observers.find((x) => x.room === room);
  const missing = [...seqs].filter((s) => !obs.ranges.covers(s));
  if (missing.length) lost[room] = missing.slice(0, 20);
}
stopping = true;
for (const m of [...observers, ...members]) {
  m.closing = true;
  m.ws?.terminate();
}

const durationS = Math.round((Date.now() - t0) / 1000);
const warmupS = Math.min(120, Math.max(o.sample, durationS * 0.2));
const steady = samples.filter((s) => s.t >= warmupS);
const k = Math.max(1, Math.min(3, Math.floor(steady.length / 3)));
const early = steady.slice(0, k);
const late = steady.slice(-k);
const mean = (xs) => xs.reduce((a, x) => a + x, 0) / (xs.length || 1);
const growth = (f) => Math.round((mean(late.map(f)) - mean(early.map(f))) * 10) / 10;
const perWorker = (i, key) => (s) => s.workers[i]?.[key] ?? NaN;
const checks = [];
const check = (name, value, limit, ok) => checks.push({ name, value, limit, ok });
for (let i = 0; i < o.workers; i++) {
  const g = growth(perWorker(i, 'rssMb'));
  check(`worker ${i} RSS growth (MB)`, g, o['max-rss-growth-mb'], g <= o['max-rss-growth-mb']);
  const f = growth(perWorker(i, 'fds'));
  check(`worker ${i} fd growth`, f, o['max-fd-growth'], f <= o['max-fd-growth']);
}
const gs = growth((s) => s.supervisor.rssMb);
check('supervisor RSS growth (MB)', gs, o['max-rss-growth-mb'], gs <= o['max-rss-growth-mb']);
const maxLag = Math.max(...steady.map((s) => s.lagMs));
check('max event loop lag (ms)', maxLag, o['max-lag-ms'], maxLag <= o['max-lag-ms']);
const gr = growth((s) => s.redisUsedMb);
check('Redis used_memory growth (MB)', gr, o['max-redis-growth-mb'], gr <= o['max-redis-growth-mb']);
const restarts = samples.at(-1)?.restarts ?? NaN;
check('worker restarts', restarts, 0, restarts === 0);
const lostCount = Object.values(lost).reduce((a, x) => a + x.length, 0);
check('acknowledged messages not delivered to the room observer', lostCount, 0, lostCount === 0);
check('connections closed by the server (not by the soak)', stats.closesUnexpected, 0, stats.closesUnexpected === 0);
const serverErrors = Object.entries(stats.errors).filter(([code]) => code !== 'RATE_LIMITED' && code !== 'timeout').reduce((a, [, n]) => a + n, 0);
check('error replies other than RATE_LIMITED', serverErrors, 0, serverErrors === 0);
check('steady samples', steady.length, 2, steady.length >= 2);
check('cluster stayed up', clusterExited ? 'exited' : 'up', 'up', !clusterExited);

cluster.kill('SIGTERM');
await Promise.race([new Promise((r) => cluster.once('exit', r)), sleep(15_000)]);
await redis.quit().catch(() => undefined);
stopAll('SIGTERM');

const passed = checks.every((c) => c.ok);
const report = {
  when: new Date().toISOString(),
  node: process.version,
  host: { cpus: (await import('node:os')).cpus().length, memGb: Math.round((await import('node:os')).totalmem() / 2 ** 30) },
  options: o,
  durationS,
  warmupS,
  stats,
  lost,
  checks,
  passed,
  samples,
};
writeFileSync(o.out, JSON.stringify(report, null, 2) + '\n');
console.log('\nsoak summary');
for (const c of checks) console.log(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.value} (limit ${c.limit})`);
console.log(
  `  traffic: chat ${stats.chatAcked} shown + ${stats.chatSampled} sampled of ${stats.chatSent}; likes ${stats.likesAcked}/${stats.likesSent}; ` +
    `API ${stats.apiAcked}/${stats.apiSent}; reconnects ${stats.reconnects} (recovered ${stats.recovered}, not ${stats.unrecovered}); gaps ${stats.gaps}; ` +
    `unexpected closes ${stats.closesUnexpected}; unanswered at a disconnect ${stats.unanswered}; errors ${JSON.stringify(stats.errors)}`,
);
console.log(`  ${passed ? 'PASSED' : 'FAILED'}; results in ${o.out}`);
process.exit(passed ? 0 : 1);
