// Starts a contender — roomcast or a peer — with N workers and gives the bench one shape:
// where members connect, where senders post, the server pids, and each room's final seq.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { ROOT, BENCH_DIR, RESULTS_DIR, freePort, onCleanup, sleep, waitFor } from './common.mjs';
import { childrenOf } from './proc.mjs';

// the servers never outlive the bench process, whatever way it ends
const LIVE = new Set();
process.once('exit', () => {
  for (const p of LIVE) if (p.exitCode === null) p.kill('SIGKILL');
});

export const SECRET = 'bench-secret-0123456789abcdef0123456789abcdef';
export const API_KEY = 'bench-api-key-0123456789';

export const TARGETS = {
  roomcast: { label: 'roomcast', proto: 'roomcast' },
  uws: { label: 'raw uWS publish', proto: 'peer', script: 'uws-peer.mjs', samePort: true },
  ws: { label: 'ws broadcast loop', proto: 'peer', script: 'ws-peer.mjs', samePort: false },
  sio: { label: 'Socket.IO 4 + redis-streams-adapter', proto: 'sio', script: 'sio-peer.mjs', samePort: false },
};

/** A tiny HTTP client (keep-alive off) for control requests. */
/** The tail check asks a server that may still be working off a backlog: give it time. */
const SEQS_TIMEOUT_MS = 60_000;

export function http(method, url, { body, headers = {}, timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: { ...headers, ...(data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {}) } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout ${method} ${url}`)));
    req.on('error', reject);
    req.end(data);
  });
}

/** Node flags for the server processes: the bench's own, else BENCH_SERVER_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"). */
function serverNodeArgs(o) {
  return o.nodeArgs ?? (process.env.BENCH_SERVER_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? []);
}

function logFile(name) {
  const dir = join(RESULTS_DIR, 'logs');
  mkdirSync(dir, { recursive: true });
  return join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.log`);
}

/**
 * kind: roomcast | uws | ws | sio. o: { workers, redisUrl, tickMs, maxTickMs, args: [] extra
 * roomcast flags, nodeArgs: [] node flags of the server processes (roomcast's workers inherit them), redisAlways,
 * admin: serve /metrics and /readyz from the supervisor on --admin-port (the public port then
 * answers neither): a scrape then never waits for a worker busy with a fan-out }.
 */
export async function startTarget(kind, o) {
  const t = TARGETS[kind];
  if (!t) throw new Error(`unknown target ${kind} (roomcast, uws, ws, sio)`);
  const workers = o.workers ?? 1;
  const procs = [];
  const file = logFile(`${kind}-${workers}w`);
  const out = createWriteStream(file);
  let urls;
  let adminPort;
  let readyLines = 0;
  const spawnLogged = (args, env = {}) => {
    const p = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    p.stdout.on('data', (d) => {
      out.write(d);
      const s = d.toString();
      readyLines += (s.match(/roomcast worker listening|peer listening/g) ?? []).length;
    });
    p.stderr.on('data', (d) => out.write(d));
    procs.push(p);
    LIVE.add(p);
    p.once('exit', () => LIVE.delete(p));
    return p;
  };

  if (kind === 'roomcast') {
    const port = await freePort();
    const useRedis = workers > 1 || o.redisAlways;
    if (o.admin) adminPort = await freePort();
    if (useRedis && !o.redisUrl && !o.redisCluster) throw new Error('roomcast with several workers needs Redis');
    const args = [
      join(ROOT, 'dist/src/cli.js'), 'start',
      '--host', '127.0.0.1', '--port', String(port),
      '--secret', SECRET, '--api-key', API_KEY,
      '--connect-rate', '0', '--log-level', 'info',
      '--tick-ms', String(o.tickMs ?? 50),
      ...(o.maxTickMs ? ['--max-tick-ms', String(o.maxTickMs)] : []),
      ...(useRedis ? ['--workers', String(workers), ...(o.redisCluster ? ['--redis-cluster', o.redisCluster] : ['--redis', o.redisUrl])] : []),
      ...(adminPort ? ['--admin-port', String(adminPort)] : []),
      ...(o.args ?? []),
    ];
    // A single process runs with the node flags a forked worker gets (its V8 young generation
    // size), as `npm start` does: the engine in it is a worker, and its memory is measured per worker.
    // A build from before those flags existed (a "before" worktree) runs as it shipped.
    const flags = join(ROOT, 'dist/src/cluster/worker-flags.js');
    const nodeArgs = useRedis || !existsSync(flags)
      ? serverNodeArgs(o)
      : (await import(flags)).workerExecArgv(serverNodeArgs(o), process.env.NODE_OPTIONS);
    spawnLogged([...nodeArgs, ...args]);
    urls = [{ host: '127.0.0.1', port }];
  } else {
    const base = await freePort();
    if (workers > 1 && !o.redisUrl) throw new Error(`${kind} peer with several workers needs Redis`);
    urls = [];
    for (let i = 0; i < workers; i++) {
      const port = t.samePort ? base : i === 0 ? base : await freePort();
      if (!t.samePort || i === 0) urls.push({ host: '127.0.0.1', port });
      spawnLogged([
        ...serverNodeArgs(o),
        join(BENCH_DIR, 'peers', t.script),
        '--port', String(port), '--index', String(i), '--workers', String(workers),
        '--tick-ms', String(o.tickMs ?? 50),
        ...(workers > 1 ? ['--redis', o.redisUrl] : []),
        ...(o.peerArgs ?? []),
      ]);
      if (t.samePort) await sleep(50);
    }
  }
  const main = procs[0];
  const stop = async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    const deadline = Date.now() + 8000;
    while (procs.some((p) => p.exitCode === null) && Date.now() < deadline) await sleep(100);
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    // workers of a supervisor that was SIGKILLed: they exit on IPC disconnect, but make sure
    for (const pid of workerPidsCache) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    out.end();
  };
  onCleanup(stop);
  let workerPidsCache = [];
  const wantReady = kind === 'roomcast' ? workers : workers;
  const t0 = Date.now();
  await waitFor(`${kind} to listen (log ${file})`, async () => {
    if (procs.some((p) => p.exitCode !== null)) throw new Error(`${kind} exited; see ${file}`);
    if (readyLines >= wantReady) return true;
    // fallback if the "listening" log line ever changes: every worker exists and /readyz says
    // yes, 20 s on (late listeners would get fewer members, so the log line is preferred)
    if (Date.now() - t0 < 20_000 + workers * 500) return false;
    const kids = kind === 'roomcast' && procs.length === 1 && workers > 1 ? childrenOf(procs[0].pid).length : workers;
    if (kids < workers) return false;
    const r = await http('GET', `http://${urls[0].host}:${adminPort ?? urls[0].port}${kind === 'roomcast' ? '/readyz' : '/healthz'}`, { timeoutMs: 2000 });
    return r.status === 200;
  }, 60_000 + workers * 2000).catch((err) => {
    throw new Error(`${err.message}`);
  });
  if (procs.some((p) => p.exitCode !== null)) throw new Error(`${kind} exited during start; see ${file}`);

  const api = urls[0];
  const apiBase = `http://${api.host}:${api.port}`;
  const target = {
    kind,
    label: t.label,
    proto: t.proto,
    workers,
    urls,
    apiBase,
    apiKey: API_KEY,
    secret: kind === 'roomcast' ? SECRET : undefined,
    logFile: file,
    /** Every server process: the supervisor and its workers, or the peer processes. */
    pids() {
      if (kind === 'roomcast' && (workers > 1 || o.redisAlways)) {
        workerPidsCache = childrenOf(main.pid);
        return [main.pid, ...workerPidsCache];
      }
      return procs.map((p) => p.pid);
    },
    workerPids() {
      if (kind === 'roomcast' && (workers > 1 || o.redisAlways)) return (workerPidsCache = childrenOf(main.pid));
      return procs.map((p) => p.pid);
    },
    /** The server's last seq for each room (array in rooms order). */
    async finalSeqs(rooms) {
      if (kind === 'roomcast') {
        const out = new Array(rooms.length).fill(0);
        let next = 0;
        const worker = async () => {
          while (next < rooms.length) {
            const i = next++;
            const r = await http('GET', `${apiBase}/v1/rooms/${encodeURIComponent(rooms[i])}`, { headers: { Authorization: `Bearer ${API_KEY}` }, timeoutMs: SEQS_TIMEOUT_MS });
            if (r.status === 200) out[i] = JSON.parse(r.text).seq;
            else if (r.status !== 404) throw new Error(`GET /v1/rooms/${rooms[i]}: ${r.status} ${r.text}`);
          }
        };
        await Promise.all(Array.from({ length: Math.min(16, rooms.length) }, worker));
        return out;
      }
      const r = await http('GET', `${apiBase}/seqs`, { timeoutMs: SEQS_TIMEOUT_MS });
      const s = JSON.parse(r.text);
      return rooms.map((room) => s[room] ?? 0);
    },
    async metrics() {
      if (kind !== 'roomcast') return '';
      const base = adminPort ? `http://${api.host}:${adminPort}` : apiBase;
      return (await http('GET', `${base}/metrics`, { timeoutMs: 15_000 })).text;
    },
    stop,
  };
  return target;
}

/** Sums a Prometheus metric (all label sets, or those matching `labelRe`) from text format. */
export function promSum(text, name, labelRe) {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    if (labelRe && !labelRe.test(rest)) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) {
      sum += v;
      found = true;
    }
  }
  return found ? sum : null;
}

/** All values of a gauge per label set (e.g. effective tick per worker). */
/** A histogram's cumulative bucket counts summed over workers: Map(le seconds → count). */
export function promBuckets(text, name) {
  const out = new Map();
  const prefix = name + '_bucket{';
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (le === undefined) continue;
    const key = le === '+Inf' ? Infinity : Number(le);
    out.set(key, (out.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

export function promValues(text, name) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    out.push(Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

/** A metric's value per `worker` label (summed over the samples matching `labelRe`); one process without the label is `w0`. */
export function promByWorker(text, name, labelRe) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (labelRe && !labelRe.test(line)) continue;
    const w = /worker="([^"]+)"/.exec(line)?.[1] ?? 'w0';
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) out[w] = (out[w] ?? 0) + v;
  }
  return out;
}
