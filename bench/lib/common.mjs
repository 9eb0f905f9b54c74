// Shared helpers of the bench scripts: flags, timing, ports, machine facts, results files.
import { createServer } from 'node:net';
import { execFileSync } from 'node:child_process';
import { cpus, totalmem, release, hostname, loadavg } from 'node:os';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const ROOT = dirname(BENCH_DIR);
export const RESULTS_DIR = join(BENCH_DIR, 'results');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Parses `--key value`, `--key=value` and bare `--flag` (true) into an object whose keys are
 * camelCased; `spec` gives defaults and types (number, boolean, string, list of strings/numbers).
 * Unknown flags are errors, so a typo never silently runs the default.
 */
export function parseFlags(spec, argv = process.argv.slice(2), usage = '') {
  const out = {};
  for (const [k, v] of Object.entries(spec)) out[k] = v.default;
  const camel = (s) => s.replace(/-([a-z])/g, (_m, c) => c.toUpperCase());
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      console.log(usage);
      for (const [k, v] of Object.entries(spec)) {
        const kebab = k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
        console.log(`  --${kebab.padEnd(22)} ${v.help ?? ''} (default: ${JSON.stringify(v.default)})`);
      }
      process.exit(0);
    }
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    let [key, val] = a.slice(2).split(/=(.*)/s, 2);
    key = camel(key);
    const s = spec[key];
    if (!s) throw new Error(`unknown flag --${a.slice(2).split('=')[0]} (try --help)`);
    if (s.type === 'boolean') {
      if (val === undefined) val = argv[i + 1] === 'false' || argv[i + 1] === 'true' ? argv[++i] : 'true';
      out[key] = val === 'true' || val === '1';
      continue;
    }
    if (val === undefined) val = argv[++i];
    if (val === undefined) throw new Error(`--${key} needs a value`);
    if (s.type === 'number') {
      const n = Number(val);
      if (!Number.isFinite(n)) throw new Error(`--${key} must be a number`);
      out[key] = n;
    } else if (s.type === 'numbers') out[key] = val.split(',').filter(Boolean).map(Number);
    else if (s.type === 'list') out[key] = val.split(',').map((x) => x.trim()).filter(Boolean);
    else out[key] = val;
  }
  return out;
}

export function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = srv.address().port;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls fn until it returns truthy or timeoutMs passes (then throws with `what`). */
export async function waitFor(what, fn, timeoutMs, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

const t0 = Date.now();
export function log(...args) {
  const s = ((Date.now() - t0) / 1000).toFixed(1).padStart(7);
  console.log(`[${s}s]`, ...args);
}

export function machine() {
  const c = cpus();
  let kernel = release();
  try {
    kernel = readFileSync('/proc/version', 'utf8').trim().split(' ').slice(0, 3).join(' ');
  } catch {}
  return {
    cpuModel: c[0]?.model ?? 'unknown',
    cores: c.length,
    memGiB: +(totalmem() / 2 ** 30).toFixed(1),
    kernel,
    node: process.version,
    host: hostname(),
    loadavg: loadavg().map((l) => +l.toFixed(2)),
  };
}

const loadAtStart = loadavg().map((l) => +l.toFixed(2));
const startedAt = new Date().toISOString();

/** The commit the bench runs (with `+dirty` when the worktree has changes), or null outside git. */
export function gitCommit() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim();
    return dirty ? `${head}+dirty` : head;
  } catch {
    return null;
  }
}

/**
 * The ROOMCAST_* settings in the bench's environment: servers the bench spawns inherit them,
 * so a run with any is a variant, not the defaults (report.mjs publishes default runs first).
 */
export function serverEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('ROOMCAST_')));
}

/** Writes bench/results/<scenario>-<stamp>.json and returns its path. */
export function writeResult(scenario, data) {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const date = new Date().toISOString();
  const file = join(RESULTS_DIR, `${scenario}-${date.replace(/[:.]/g, '-')}.json`);
  const out = { scenario, date, startedAt, commit: gitCommit(), machine: { ...machine(), loadavgAtStart: loadAtStart }, serverEnv: serverEnv(), ...data };
  writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  return file;
}

export const fmt = (n, d = 0) =>
  n === undefined || n === null || Number.isNaN(n) ? '–' : Number(n).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

/** Runs cleanup functions on exit/signals once (children must never outlive a bench). */
const cleanups = [];
let cleaning = false;
export function onCleanup(fn) {
  cleanups.push(fn);
}
export async function cleanupAll() {
  if (cleaning) return;
  cleaning = true;
  for (const fn of cleanups.reverse()) {
    try {
      await fn();
    } catch {}
  }
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping children`);
    void cleanupAll().then(() => process.exit(130));
  });
}

/** Main wrapper: runs fn, cleans up, exits with a clear error on failure; bounded by maxMs. */
export function main(fn, maxMs) {
  const guard = setTimeout(() => {
    console.error(`bench exceeded its time bound (${Math.round(maxMs / 1000)} s); stopping`);
    void cleanupAll().then(() => process.exit(3));
  }, maxMs);
  guard.unref();
  fn()
    .then(async () => {
      await cleanupAll();
      process.exit(0);
    })
    .catch(async (err) => {
      console.error('bench failed:', err?.stack ?? err);
      await cleanupAll();
      process.exit(1);
    });
}

/** Fails early, with the install command, when a bench dependency is missing. */
export async function needPackages(names, why) {
  const { createRequire } = await import('node:module');
  const req = createRequire(import.meta.url); // bench/node_modules, then the project's
  const missing = names.filter((n) => {
    try {
      req.resolve(n);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length) {
    throw new Error(`${why} needs ${missing.join(', ')}: run npm install (bench devDependencies), or npm install --no-save ${missing.join(' ')}`);
  }
}

export const PEER_PACKAGES = { sio: ['socket.io', '@socket.io/redis-streams-adapter'], uws: [], ws: ['ws'], roomcast: [] };

/** dist/ must be built: the bench runs the compiled roomcast. */
export async function needBuild() {
  const { existsSync } = await import('node:fs');
  if (!existsSync(join(ROOT, 'dist/src/cli.js'))) throw new Error('dist/src/cli.js is missing: run npm run build first');
}

/** The command that reproduces this run (arguments with spaces quoted). */
export function commandLine(script) {
  const args = process.argv.slice(2).map((a) => (/[\s"'$`]/.test(a) ? `'${a.replace(/'/g, `'\\''`)}'` : a));
  return `npm run bench:${script}${args.length ? ` -- ${args.join(' ')}` : ''}`;
}
