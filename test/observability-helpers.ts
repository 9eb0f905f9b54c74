// Helpers for test/observability.test.ts: a private Prometheus (installed from Debian when
// missing), a roomcast cluster started from the built CLI, and the bits of PromQL and Grafana
// dashboard handling the proof needs (variable substitution, alert operands, schema checks).
import { execSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort as freePortOn } from '../src/gateway/free-port.js';
import { has } from './global-setup.js';

export const ROOT = new URL('..', import.meta.url).pathname;
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));


/**
 * Makes sure `prometheus` and `promtool` are on PATH: installs Debian's `prometheus` package
 * when missing and we are root (or have passwordless sudo); otherwise throws saying how.
 * The package may try to start a system service on :9090; the proof never uses it.
 */
export function ensurePrometheus(): void {
  if (has('prometheus') && has('promtool')) return;
  const install = 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus';
  let sudo: string | undefined;
  if (process.getuid?.() === 0) sudo = '';
  else if (has('sudo')) {
    try {
      execSync('sudo -n true', { stdio: 'ignore' });
      sudo = 'sudo -n ';
    } catch {
      sudo = undefined;
    }
  }
  if (sudo === undefined || !has('apt-get')) {
    throw new Error(
      'the observability proof needs Prometheus (prometheus + promtool on PATH): install it, e.g. `sudo apt-get install prometheus`, or run the tests as root on Debian/Ubuntu so they install it',
    );
  }
  console.log('prometheus missing: installing Debian\'s prometheus package');
  execSync(sudo ? `${sudo}sh -c '${install}'` : install, { stdio: 'inherit', shell: '/bin/sh' });
  if (!has('prometheus') || !has('promtool')) throw new Error('apt-get installed prometheus but prometheus/promtool are not on PATH');
}

/**
 * The proof runs the built CLI (npm test builds first). Missing dist/ fails; a dist/ older
 * than src/ (sources edited after the build) only warns, since the run is still meaningful.
 */
export function assertBuilt(): string {
  const cli = join(ROOT, 'dist/src/cli.js');
  if (!existsSync(cli)) throw new Error('dist/src/cli.js is missing: run `npm run build` (`npm test` does)');
  const stale: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const rel = join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if (rel.endsWith('.ts') && !rel.endsWith('.d.ts')) {
        const out = join(ROOT, 'dist', rel.replace(/\.ts$/, '.js'));
        if (!existsSync(out) || statSync(out).mtimeMs + 1000 < statSync(join(ROOT, rel)).mtimeMs) stale.push(rel);
      }
    }
  };
  walk('src');
  if (stale.length > 0) console.warn(`observability proof: dist/ is older than ${stale.join(', ')}; run \`npm run build\` to test the current sources`);
  return cli;
}

export const freePort = (): Promise<number> => freePortOn('127.0.0.1');

/** Keeps the last lines a child wrote, for failure messages. */
function tail(proc: ChildProcess, max = 40): () => string {
  const lines: string[] = [];
  const take = (d: Buffer) => {
    lines.push(...d.toString().split('\n').filter(Boolean));
    lines.splice(0, Math.max(0, lines.length - max));
  };
  proc.stdout?.on('data', take);
  proc.stderr?.on('data', take);
  return () => lines.join('\n');
}

async function stopChild(proc: ChildProcess, graceMs: number): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGTERM');
  const kill = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(kill);
}

// ---- Prometheus ----

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface PromResponse {
  status: 'success' | 'error';
  data?: { resultType: string; result: PromSample[] | [number, string] };
  errorType?: string;
  error?: string;
}

export interface PromRule {
  name: string;
  query: string;
  type: 'alerting' | 'recording';
  health: string;
  lastError?: string;
  lastEvaluation: string;
  state?: string;
}

export class Prometheus {
  private constructor(
    private readonly proc: ChildProcess,
    readonly url: string,
    private readonly dir: string,
    readonly output: () => string,
  ) {}

  /** A private Prometheus on a free loopback port with its own config and data dir. */
  static async start(configYaml: string): Promise<Prometheus> {
    const dir = mkdtempSync(join(tmpdir(), 'roomcast-prom-'));
    const config = join(dir, 'prometheus.yml');
    writeFileSync(config, configYaml);
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const proc = spawn(
        'prometheus',
        [
          `--config.file=${config}`,
          `--storage.tsdb.path=${join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
          '--storage.tsdb.retention.time=1h',
          '--log.level=warn',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      process.once('exit', () => proc.kill('SIGKILL'));
      const p = new Prometheus(proc, `http://127.0.0.1:${port}`, dir, tail(proc));
      const deadline = Date.now() + 20_000;
      while (proc.exitCode === null && Date.now() < deadline) {
        try {
          if ((await fetch(`${p.url}/-/ready`)).ok) return p;
        } catch {
          // not listening yet
        }
        await sleep(100);
      }
      await stopChild(proc, 1000);
      if (attempt >= 3) {
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`prometheus did not become ready:\n${p.output()}`);
      }
    }
  }

  async query(expr: string): Promise<PromResponse> {
    const res = await fetch(`${this.url}/api/v1/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ query: expr }).toString(),
    });
    return (await res.json()) as PromResponse;
  }

  /** The vector result of `expr` (throws on a query error or a non-vector result). */
  async vector(expr: string): Promise<PromSample[]> {
    const r = await this.query(expr);
    if (r.status !== 'success' || !r.data) throw new Error(`${expr}: ${r.errorType}: ${r.error}`);
    if (r.data.resultType !== 'vector') throw new Error(`${expr}: ${r.data.resultType} result, expected a vector`);
    return r.data.result as PromSample[];
  }

  async rules(): Promise<PromRule[]> {
    const res = (await (await fetch(`${this.url}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: PromRule[] }> } };
    return res.data.groups.flatMap((g) => g.rules);
  }

  async targets(): Promise<Array<{ health: string; lastError: string; scrapeUrl: string; labels: Record<string, string> }>> {
    const res = (await (await fetch(`${this.url}/api/v1/targets`)).json()) as {
      data: { activeTargets: Array<{ health: string; lastError: string; scrapeUrl: string; labels: Record<string, string> }> };
    };
    return res.data.activeTargets;
  }

  async stop(): Promise<void> {
    await stopChild(this.proc, 5000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * grafana/prometheus.yml as the proof runs it: 1 s scrapes and evaluations, the rules file by
 * its absolute path, the roomcast target at `metricsPort`, and the optional redis_exporter
 * job at `exporterPort` (where nothing listens). Throws when the example no longer has a
 * line this relies on.
 */
export function proofConfig(metricsPort: number, exporterPort: number): string {
  let text = readFileSync(join(ROOT, 'grafana/prometheus.yml'), 'utf8');
  const swaps: Array<[RegExp, string]> = [
    [/^( {2}scrape_interval:) 15s/m, '$1 1s\n  scrape_timeout: 1s'],
    [/^( {2}evaluation_interval:) 15s/m, '$1 1s'],
    [/^( {4}scrape_timeout:) 5s/m, '$1 1s'],
    [/^( {2}- )alerts\.yml/m, `$1${join(ROOT, 'grafana/alerts.yml')}`],
    [/^( {10}- )127\.0\.0\.1:8080/m, `$1127.0.0.1:${metricsPort}`],
    [/^( {10}- )127\.0\.0\.1:9121/m, `$1127.0.0.1:${exporterPort}`],
  ];
  for (const [re, to] of swaps) {
    if (!re.test(text)) throw new Error(`grafana/prometheus.yml: no line matching ${re}`);
    text = text.replace(re, to);
  }
  return text;
}

// ---- roomcast from the built CLI ----

export class RoomcastProcess {
  private constructor(
    readonly proc: ChildProcess,
    readonly port: number,
    /** Where /metrics is served: the public port, or the --admin-port given in `args`. */
    readonly metricsPort: number,
    readonly output: () => string,
  ) {}

  static start(cli: string, port: number, metricsPort: number, args: string[]): RoomcastProcess {
    const proc = spawn(process.execPath, [cli, 'start', '--port', String(port), '--host', '127.0.0.1', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    process.once('exit', () => proc.kill('SIGKILL'));
    return new RoomcastProcess(proc, port, metricsPort, tail(proc));
  }

  async metricsText(): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`);
    if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
    return res.text();
  }

  /** Waits until the node's /metrics shows `workers` distinct workers (and the supervisor). */
  async waitForWorkers(workers: number, timeoutMs = 15_000, extra: (text: string) => boolean = () => true): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.proc.exitCode !== null) throw new Error(`roomcast exited (${this.proc.exitCode}):\n${this.output()}`);
      try {
        const text = await this.metricsText();
        const seen = new Set([...text.matchAll(/^roomcast_connections\{[^}]*worker="([^"]+)"/gm)].map((m) => m[1]));
        if (seen.size >= workers && text.includes('roomcast_worker_restarts_total') && extra(text)) return text;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`roomcast did not report ${workers} workers in time:\n${this.output()}`);
      await sleep(100);
    }
  }

  /** Pids of the worker processes (children of the supervisor), from /proc. */
  workerPids(): number[] {
    const pids: number[] = [];
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      try {
        const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === this.proc.pid) pids.push(Number(e));
      } catch {
        // gone meanwhile
      }
    }
    return pids;
  }

  stop(): Promise<void> {
    return stopChild(this.proc, 15_000);
  }
}

/** A sample's value in the node's /metrics text (sum over the lines matching every label). */
export function sampleSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const lbl = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => lbl.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

// ---- PromQL ----

const NUMBER = /^[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?|0x[0-9a-f]+|inf|nan)$/i;

export function isNumberLiteral(expr: string): boolean {
  return NUMBER.test(expr.trim());
}

/** Index of the `)`/`]`/`}` closing the bracket at `open`, skipping strings. */
function closing(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '"' || ch === "'" || ch === '`') {
      i = endOfString(s, i);
      continue;
    }
    if ('([{'.includes(ch)) depth++;
    else if (')]}'.includes(ch) && --depth === 0) return i;
  }
  return -1;
}

function endOfString(s: string, start: number): number {
  const q = s[start]!;
  for (let i = start + 1; i < s.length; i++) {
    if (s[i] === '\\' && q !== '`') i++;
    else if (s[i] === q) return i;
  }
  return s.length;
}

function stripOuterParens(expr: string): string {
  let e = expr.trim();
  while (e.startsWith('(') && closing(e, 0) === e.length - 1) e = e.slice(1, -1).trim();
  return e;
}

/** The right operand of a binary operator without its leading `bool`/`on(…)`/`group_left(…)` modifiers. */
function stripModifiers(operand: string): string {
  let e = operand.trim();
  for (;;) {
    const m = /^(bool|on|ignoring|group_left|group_right)\b\s*/.exec(e);
    if (!m) return e;
    e = e.slice(m[0].length);
    if (m[1] !== 'bool' && e.startsWith('(')) e = e.slice(closing(e, 0) + 1).trim();
  }
}

const WORD_OPS = [['or'], ['and', 'unless']];
const COMPARISONS = ['==', '!=', '>=', '<=', '>', '<'];

/** Splits `expr` at its top-level occurrences of `ops` (outside brackets and strings). */
function splitTopLevel(expr: string, ops: string[]): string[] {
  const parts: string[] = [];
  let depth = 0;
  let from = 0;
  const words = ops.every((o) => /^\w+$/.test(o));
  for (let i = 0; i < expr.length; i++) {
    const ch = expr[i]!;
    if (ch === '"' || ch === "'" || ch === '`') {
      i = endOfString(expr, i);
      continue;
    }
    if ('([{'.includes(ch)) depth++;
    else if (')]}'.includes(ch)) depth--;
    if (depth !== 0) continue;
    if (words) {
      const m = /^(\w+)/.exec(expr.slice(i));
      if (m && (i === 0 || !/\w/.test(expr[i - 1]!))) {
        if (ops.includes(m[1]!.toLowerCase())) {
          parts.push(expr.slice(from, i));
          from = i + m[1]!.length;
        }
        i += m[1]!.length - 1;
      }
      continue;
    }
    const op = ops.find((o) => expr.startsWith(o, i));
    if (op) {
      parts.push(expr.slice(from, i));
      from = i + op.length;
      i += op.length - 1;
    }
  }
  parts.push(expr.slice(from));
  return parts.map((p) => p.trim());
}

/**
 * The operands of an expression's top-level set (`or`, `and`, `unless`) and comparison
 * operators, recursively, without modifiers; e.g. `a / b > 0.01 and c > 100` → `a / b`,
 * `0.01`, `c`, `100`. An alert is its operands compared against thresholds: when every
 * non-literal operand returns series, the alert is evaluating real data.
 */
export function operands(expr: string): string[] {
  const e = stripOuterParens(expr);
  for (const ops of [...WORD_OPS, COMPARISONS]) {
    const parts = splitTopLevel(e, ops);
    if (parts.length > 1) return parts.flatMap((p) => operands(stripModifiers(p)));
  }
  return [e];
}

// ---- Grafana dashboard ----

export interface Target {
  refId: string;
  expr: string;
  datasource?: { type?: string; uid?: string };
  legendFormat?: string;
  instant?: boolean;
  range?: boolean;
}

export interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
  collapsed?: boolean;
}

export interface Variable {
  type: string;
  name: string;
  query?: unknown;
  definition?: string;
  datasource?: { type?: string; uid?: string };
  allValue?: string;
  includeAll?: boolean;
}

export interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
  time: { from: string; to: string };
  [k: string]: unknown;
}

export function readDashboard(): Dashboard {
  return JSON.parse(readFileSync(join(ROOT, 'grafana/dashboards/roomcast.json'), 'utf8')) as Dashboard;
}

/** Every panel (rows' nested panels included) with the row it sits under. */
export function allPanels(d: Dashboard): Array<{ row: string; panel: Panel }> {
  const out: Array<{ row: string; panel: Panel }> = [];
  let row = '';
  for (const p of d.panels) {
    if (p.type === 'row') {
      row = p.title;
      for (const q of p.panels ?? []) out.push({ row, panel: q });
    } else out.push({ row, panel: p });
  }
  return out;
}

/**
 * What Grafana would send to Prometheus for `expr` with every variable at its "All" value:
 * `$instance` → `.*`; `$__rate_interval` → 1m (≥ 4 scrapes at the proof's 1 s interval);
 * `$__range`/`$__interval` → fixed windows. Throws on an unknown variable.
 */
export function substitute(expr: string, vars: Record<string, string>): string {
  const builtins: Record<string, string> = { __rate_interval: '1m', __interval: '15s', __range: '5m', __range_s: '300' };
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (_m, a: string | undefined, b: string | undefined) => {
    const name = (a ?? b)!;
    const v = vars[name] ?? builtins[name];
    if (v === undefined) throw new Error(`unknown dashboard variable $${name} in ${expr}`);
    return v;
  });
}

const PANEL_TYPES = new Set(['timeseries', 'stat', 'gauge', 'bargauge', 'table', 'state-timeline', 'heatmap', 'text', 'row']);

/**
 * Grafana's dashboard conventions, checked: a uid Grafana accepts, schemaVersion, a
 * datasource variable every query uses, unique panel ids, a 24-column grid without overlaps,
 * targets with refId + expr + the datasource variable. Returns the problems found.
 */
export function dashboardProblems(d: Dashboard): string[] {
  const problems: string[] = [];
  const need = (ok: boolean, what: string) => {
    if (!ok) problems.push(what);
  };
  need(typeof d.uid === 'string' && /^[A-Za-z0-9_-]{1,40}$/.test(d.uid), 'uid: 1-40 chars of A-Z a-z 0-9 _ -');
  need(typeof d.title === 'string' && d.title.length > 0, 'title');
  need(Number.isInteger(d.schemaVersion) && d.schemaVersion >= 30, 'schemaVersion (integer >= 30)');
  need(d.id === null || d.id === undefined, 'id must be null (Grafana assigns it on import)');
  need(!('__inputs' in d), 'no __inputs: the datasource is a variable, so the JSON imports and provisions as is');
  need(typeof d.time?.from === 'string' && typeof d.time?.to === 'string', 'time.from/time.to');
  need(Array.isArray(d.templating?.list), 'templating.list');
  const dsVar = d.templating.list.find((v) => v.type === 'datasource');
  need(dsVar?.query === 'prometheus', 'a datasource variable over prometheus datasources');
  const dsRef = `\${${dsVar?.name ?? 'datasource'}}`;
  const names = new Set<string>();
  for (const v of d.templating.list) {
    need(/^\w+$/.test(v.name) && !names.has(v.name), `variable name ${v.name}`);
    names.add(v.name);
    if (v.type === 'query') need(v.datasource?.uid === dsRef, `variable ${v.name} uses ${dsRef}`);
  }
  need(Array.isArray(d.panels) && d.panels.length > 0, 'panels');
  const ids = new Set<number>();
  const cells = new Map<string, string>();
  const place = (p: Panel) => {
    const g = p.gridPos;
    const where = `panel ${p.id} "${p.title}"`;
    if (!g || ![g.x, g.y, g.w, g.h].every((n) => Number.isInteger(n) && n >= 0) || g.w < 1 || g.h < 1 || g.x + g.w > 24) {
      problems.push(`${where}: gridPos {x,y,w,h} integers within 24 columns`);
      return;
    }
    for (let x = g.x; x < g.x + g.w; x++) {
      for (let y = g.y; y < g.y + g.h; y++) {
        const other = cells.get(`${x},${y}`);
        if (other) {
          problems.push(`${where} overlaps ${other}`);
          return;
        }
        cells.set(`${x},${y}`, where);
      }
    }
  };
  const all = d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  for (const p of all) {
    const where = `panel ${p.id} "${p.title}"`;
    need(Number.isInteger(p.id) && !ids.has(p.id), `${where}: unique integer id`);
    ids.add(p.id);
    need(PANEL_TYPES.has(p.type), `${where}: known panel type (${p.type})`);
    need(typeof p.title === 'string' && p.title.length > 0, `${where}: title`);
    place(p);
    if (p.type === 'row') {
      need(p.gridPos?.w === 24 && p.gridPos?.h === 1 && p.gridPos?.x === 0, `${where}: rows span the grid`);
      continue;
    }
    need(p.datasource?.uid === dsRef && p.datasource?.type === 'prometheus', `${where}: datasource ${dsRef}`);
    need(Array.isArray(p.targets) && p.targets.length > 0, `${where}: targets`);
    const refs = new Set<string>();
    for (const t of p.targets ?? []) {
      need(/^[A-Z]+$/.test(t.refId) && !refs.has(t.refId), `${where}: unique refId`);
      refs.add(t.refId);
      need(typeof t.expr === 'string' && t.expr.trim().length > 0, `${where} ${t.refId}: expr`);
      need(t.datasource?.uid === dsRef, `${where} ${t.refId}: datasource ${dsRef}`);
    }
  }
  // Rows are laid out top to bottom: a row's panels sit below it and above the next row.
  let lastRowY = -1;
  for (const p of d.panels) {
    if (p.type === 'row') {
      need(p.gridPos.y > lastRowY, `row "${p.title}" below the previous row`);
      lastRowY = p.gridPos.y;
    } else need(p.gridPos.y > lastRowY, `panel "${p.title}" below its row`);
  }
  return problems;
}
