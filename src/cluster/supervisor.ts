// The supervisor of `roomcast start --workers N`: forks N worker processes that all listen
// on one port (SO_REUSEPORT, uWS's default on Linux), restarts crashed ones with capped
// jittered backoff, serves the node-wide /metrics aggregate to its workers over IPC, and
// drains every worker on SIGTERM/SIGINT.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { AggregatorRegistry, collectDefaultMetrics, Counter, Registry } from 'prom-client';
import { LAG_SAMPLE_MS } from '../metrics/metrics.js';
import type { Config } from '../config/schema.js';
import { listenHost } from '../config/load.js';
import { freePort } from '../gateway/free-port.js';
import { backoffMs } from '../util/backoff.js';
import type { MetricJson, ToSupervisor, ToWorker } from './ipc.js';

const WORKER_MAIN = fileURLToPath(new URL('./worker.js', import.meta.url));
/** A worker that stayed up this long resets its restart backoff. */
const STABLE_MS = 30_000;
/** Worker restarts: 250 ms doubling to 10 s, so a crash loop neither spins nor waits long. */
const RESTART_BACKOFF = { baseMs: 250, maxMs: 10_000 };
const COLLECT_TIMEOUT_MS = 2000;

interface Slot {
  id: string;
  child?: ChildProcess;
  attempts: number;
  startedAt: number;
  restartTimer?: NodeJS.Timeout;
}

export interface Supervisor {
  readonly port: number;
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
  collectDefaultMetrics({ register: registry, prefix: 'roomcast_', eventLoopMonitoringPrecision: LAG_SAMPLE_MS });
  const restarts = new Counter({
    name: 'roomcast_worker_restarts_total',
    help: 'worker processes restarted after a crash',
    registers: [registry],
  });
  const slots: Slot[] = Array.from({ length: count }, (_v, i) => ({ id: `w${i}`, attempts: 0, startedAt: 0 }));
  let stopping = false;
  let seq = 0;
  const pending = new Map<number, { want: number; got: MetricJson[][]; done: () => void }>();
  let readyLeft = count;
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));

  const send = (child: ChildProcess | undefined, msg: ToWorker) => {
    if (child?.connected) child.send(msg);
  };

  async function aggregate(): Promise<string> {
    const live = slots.map((s) => s.child).filter((c): c is ChildProcess => !!c?.connected);
    const id = ++seq;
    const got: MetricJson[][] = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, COLLECT_TIMEOUT_MS);
      pending.set(id, {
        want: live.length,
        got,
        done: () => {
          clearTimeout(timer);
          resolve();
        },
      });
      if (live.length === 0) resolve();
      for (const c of live) send(c, { type: 'collect', id });
    });
    pending.delete(id);
    got.push(await registry.getMetricsAsJSON());
    return AggregatorRegistry.aggregate(got).metrics();
  }

  function spawn(slot: Slot): void {
    const child = fork(WORKER_MAIN, [], { stdio: 'inherit' });
    slot.child = child;
    slot.startedAt = Date.now();
    child.on('message', (m: ToSupervisor) => {
      if (m.type === 'ready') {
        log.info({ worker: slot.id, pid: child.pid }, 'worker ready');
        if (--readyLeft === 0) markReady();
      } else if (m.type === 'collected') {
        const p = pending.get(m.id);
        if (!p) return;
        p.got.push(m.metrics);
        if (p.got.length >= p.want) p.done();
      } else if (m.type === 'metrics?') {
        void aggregate().then((text) => send(child, { type: 'metrics', id: m.id, text }));
      }
    });
    child.on('exit', (code, signal) => {
      slot.child = undefined;
      if (stopping) return;
      if (Date.now() - slot.startedAt > STABLE_MS) slot.attempts = 0;
      const delay = backoffMs(slot.attempts++, RESTART_BACKOFF);
      restarts.inc();
      log.error({ worker: slot.id, code, signal, restartInMs: delay }, 'worker exited; restarting');
      slot.restartTimer = setTimeout(() => spawn(slot), delay);
    });
    send(child, { type: 'start', config: workerConfig, workerId: slot.id, devSecret });
  }

  slots.forEach(spawn);
  log.info({ workers: count, port }, 'roomcast supervisor started');

  return {
    port,
    ready,
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
      log.info('roomcast supervisor stopped');
    },
  };
}
