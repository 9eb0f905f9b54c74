// The supervisor of `roomcast start --workers N`: forks N worker processes that all listen
// on one port (SO_REUSEPORT, uWS's default on Linux), restarts crashed ones with capped
// jittered backoff, serves the node-wide /metrics aggregate to its workers over IPC (and
// itself on --admin-port), reports each worker's liveness, and drains every worker on
// SIGTERM/SIGINT.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import { processMetrics } from '../metrics/metrics.js';
import type { Config } from '../config/schema.js';
import { startAdminServer, type AdminServer } from '../gateway/admin.js';
import { listenHost } from '../config/load.js';
import { freePort } from '../gateway/free-port.js';
import { json } from '../gateway/http.js';
import { backoffMs } from '../util/backoff.js';
import { lateTimer } from '../util/late-timer.js';
import type { MetricJson, ToSupervisor, ToWorker } from './ipc.js';
import { UserCountsHub } from './user-counts.js';
import { workerExecArgv } from './worker-flags.js';

const WORKER_MAIN = fileURLToPath(new URL('./worker.js', import.meta.url));
/** A worker that stayed up this long resets its restart backoff. */
const STABLE_MS = 30_000;
/** Worker restarts: 250 ms doubling to 10 s, so a crash loop neither spins nor waits long. */
const RESTART_BACKOFF = { baseMs: 250, maxMs: 10_000 };
const COLLECT_TIMEOUT_MS = 2000;
/** How long /readyz on --admin-port waits for the workers' answers. */
const PROBE_TIMEOUT_MS = 1000;

interface Slot {
  id: string;
  child?: ChildProcess;
  attempts: number;
  startedAt: number;
  restartTimer?: NodeJS.Timeout;
  /** The worker's last metrics: reported in its place while it does not answer in time. */
  last?: MetricJson[];
  /** Names the running worker's member counts in the bus (from its `ready`). */
  presenceId?: string;
}

export interface Supervisor {
  readonly port: number;
  /** The --admin-port listener's port (served by the supervisor), when configured. */
  readonly adminPort?: number;
  /** Resolves when every worker has reported ready once. */
  readonly ready: Promise<void>;
  stop(reason?: string): Promise<void>;
}

export async function startSupervisor(config: Config, log: Logger): Promise<Supervisor> {
  const count = config.workers === 'auto' ? cpus().length : config.workers;
  const port = config.port === 0 ? await freePort(listenHost(config)) : config.port;
  const workerConfig: Config = { ...config, port, workers: 1 };
  // In dev mode every worker must verify the tokens any of them minted.
  const devSecret = randomBytes(32).toString('hex');
  const registry = new Registry();
  registry.setDefaultLabels({ worker: 'supervisor' });
  processMetrics(registry);
  const restarts = new Counter({
    name: 'roomcast_worker_restarts_total',
    help: 'worker processes restarted after a crash',
    registers: [registry],
  });
  const workerUp = new Gauge({
    name: 'roomcast_worker_up',
    help: '1 when the worker answered the last metrics collection in time; 0 when it did not or is not running',
    labelNames: ['worker'],
    registers: [registry],
  });
  const collectTimeouts = new Counter({
    name: 'roomcast_metrics_collect_timeouts_total',
    help: `metrics collections a running worker did not answer within ${COLLECT_TIMEOUT_MS} ms`,
    labelNames: ['worker'],
    registers: [registry],
  });
  const slots: Slot[] = Array.from({ length: count }, (_v, i) => ({ id: `w${i}`, attempts: 0, startedAt: 0 }));
  for (const { id } of slots) {
    workerUp.set({ worker: id }, 0);
    collectTimeouts.inc({ worker: id }, 0);
  }
  let stopping = false;
  let seq = 0;
  const waiting = new Map<number, (slot: Slot, m: ToSupervisor) => void>();
  let readyLeft = count;
  let markReady!: () => void;
  const allReady = new Promise<void>((resolve) => (markReady = resolve));

  // A worker exiting may close its channel between the check and the write (EPIPE): with a
  // callback that is its error, not an unhandled 'error' event that takes the supervisor down
  // (seen with a metrics scrape racing a stop). Whatever it owed, its deadline answers for it.
  const send = (child: ChildProcess | undefined, msg: ToWorker) => {
    if (child?.connected) child.send(msg, () => undefined);
  };
  /**
   * Workers that exited, whose member counts a running worker has not been told to drop. Their
   * counts' TTL is long (a starved worker must keep counting), so a death is passed on at once.
   */
  let dead: string[] = [];
  const forgetDead = () => {
    const to = slots.find((s) => s.presenceId && s.child?.connected);
    if (!to || dead.length === 0) return;
    send(to.child, { type: 'forget', presenceIds: dead });
    dead = [];
  };
  const users = new UserCountsHub(
    Math.min(2, config.maxConnsPerUser),
    () => slots.filter((s) => s.child).map((s) => s.id),
    (id, msg) => send(slots.find((s) => s.id === id)?.child, msg),
  );

  /**
   * Sends `msg` to every running worker; resolves with the answers that came within
   * `timeoutMs` of the supervisor's running time: on a starved box the timer fires late, and
   * the answers already waiting in the pipes are read before it counts (util/late-timer.ts).
   */
  function ask(msg: (id: number) => ToWorker, timeoutMs: number): Promise<Map<Slot, ToSupervisor>> {
    const live = slots.filter((s) => s.child?.connected);
    const id = ++seq;
    const answers = new Map<Slot, ToSupervisor>();
    return new Promise((resolve) => {
      const finish = () => {
        cancel();
        waiting.delete(id);
        resolve(answers);
      };
      const cancel = lateTimer(timeoutMs, 2 * timeoutMs, finish);
      waiting.set(id, (slot, m) => {
        answers.set(slot, m);
        if (answers.size >= live.length) finish();
      });
      if (live.length === 0) finish();
      for (const s of live) send(s.child, msg(id));
    });
  }

  let collecting: Promise<string> | undefined;
  /**
   * The node-wide metrics. Scrapes that come while a collection runs share it (each would
   * cost every worker a serialisation and the supervisor an aggregation: on a starved box,
   * retried scrapes would pile up).
   */
  function aggregate(): Promise<string> {
    collecting ??= collect().finally(() => (collecting = undefined));
    return collecting;
  }

  /**
   * A running worker that does not answer in time (hung, or busy for seconds) is reported
   * with its last answer, so its series do not vanish and restart the alerts' `for:` timers,
   * and with roomcast_worker_up 0, so the hang itself shows.
   */
  async function collect(): Promise<string> {
    const answers = await ask((id) => ({ type: 'collect', id }), COLLECT_TIMEOUT_MS);
    const got: MetricJson[][] = [];
    for (const slot of slots) {
      const answered = answers.get(slot)?.type === 'collected';
      workerUp.set({ worker: slot.id }, answered ? 1 : 0);
      if (!answered && slot.child?.connected) collectTimeouts.inc({ worker: slot.id });
      if (slot.last) got.push(slot.last);
    }
    got.push(await registry.getMetricsAsJSON());
    return AggregatorRegistry.aggregate(got).metrics();
  }

  /** Ready while not stopping, with at least one worker running, and every running worker ready (its bus reachable). */
  async function ready(): Promise<boolean> {
    const live = slots.filter((s) => s.child?.connected);
    if (stopping || live.length === 0) return false;
    const answers = await ask((id) => ({ type: 'probe', id }), PROBE_TIMEOUT_MS);
    return live.every((s) => {
      const a = answers.get(s);
      return a?.type === 'probed' && a.ready;
    });
  }

  function spawn(slot: Slot): void {
    const child = fork(WORKER_MAIN, [], { stdio: 'inherit', execArgv: workerExecArgv(process.execArgv, process.env.NODE_OPTIONS) });
    slot.child = child;
    slot.startedAt = Date.now();
    child.on('message', (m: ToSupervisor) => {
      if (m.type === 'ready') {
        log.info({ worker: slot.id, pid: child.pid }, 'worker ready');
        slot.presenceId = m.presenceId;
        forgetDead();
        if (--readyLeft === 0) markReady();
      } else if (m.type === 'collected' || m.type === 'probed') {
        // A late answer still refreshes the worker's last metrics.
        if (m.type === 'collected') slot.last = m.metrics;
        waiting.get(m.id)?.(slot, m);
      } else if (m.type === 'metrics?') {
        void aggregate().then((text) => send(child, { type: 'metrics', id: m.id, text }));
      } else if (m.type === 'users') {
        users.apply(slot.id, m);
      }
    });
    child.on('exit', (code, signal) => {
      slot.child = undefined;
      slot.last = undefined;
      users.dropWorker(slot.id);
      if (slot.presenceId) dead.push(slot.presenceId);
      slot.presenceId = undefined;
      if (stopping) return;
      forgetDead();
      if (Date.now() - slot.startedAt > STABLE_MS) slot.attempts = 0;
      const delay = backoffMs(slot.attempts++, RESTART_BACKOFF);
      restarts.inc();
      log.error({ worker: slot.id, code, signal, restartInMs: delay }, 'worker exited; restarting');
      slot.restartTimer = setTimeout(() => spawn(slot), delay);
    });
    send(child, { type: 'start', config: workerConfig, workerId: slot.id, devSecret });
  }

  slots.forEach(spawn);
  let admin: AdminServer | undefined;
  if (config.adminPort !== null) {
    admin = await startAdminServer(config.adminHost, config.adminPort, [
      { method: 'get', pattern: '/healthz', handler: () => json(200, { status: 'ok' }) },
      { method: 'get', pattern: '/readyz', handler: async () => ((await ready()) ? json(200, { ready: true }) : json(503, { ready: false })) },
      { method: 'get', pattern: '/metrics', handler: async () => ({ status: 200, body: await aggregate(), contentType: registry.contentType }) },
    ]);
  }
  log.info({ workers: count, port, adminPort: admin?.port }, 'roomcast supervisor started');

  return {
    port,
    adminPort: admin?.port,
    ready: allReady,
    async stop() {
      stopping = true;
      const exits = slots.map((s) => {
        clearTimeout(s.restartTimer);
        const child = s.child;
        if (!child) return Promise.resolve();
        return new Promise<void>((resolve) => {
          const kill = setTimeout(() => child.kill('SIGKILL'), config.drainMs + 10_000);
          child.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          send(child, { type: 'drain' });
        });
      });
      await Promise.all(exits);
      await admin?.close();
      log.info('roomcast supervisor stopped');
    },
  };
}
