// Parent side of the API senders: one or more sender processes, each posting its share of the
// rate through its own keep-alive connections, so the poster can offer more than one process
// (or one in-flight cap) takes. Windows are summed over the processes.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { onCleanup, sleep } from './common.mjs';
import { Hist } from './hist.mjs';

const WORKER = fileURLToPath(new URL('./sender-worker.mjs', import.meta.url));

/** Adds counters and {key: count} maps of `b` into `a`. */
function addInto(a, b) {
  for (const [k, v] of Object.entries(b)) {
    if (typeof v === 'number') a[k] = (a[k] ?? 0) + v;
    else if (v && typeof v === 'object') addInto((a[k] ??= {}), v);
  }
  return a;
}

export class Sender {
  /** procs: sender processes; the rate and the in-flight cap are split evenly over them. */
  constructor({ procs = 1 } = {}) {
    this.seq = 0;
    this.waiters = new Map();
    this.children = Array.from({ length: Math.max(1, procs) }, () => {
      const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      // a send on a closed channel reports here, not as an uncaught ERR_IPC_CHANNEL_CLOSED
      child.on('error', (err) => console.error(`sender: ${err.message}`));
      child.on('message', (m) => {
        const w = this.waiters.get(m.id);
        if (w) {
          this.waiters.delete(m.id);
          w(m);
        }
      });
      return child;
    });
    onCleanup(() => this.stop());
  }

  get pid() {
    return this.children[0].pid;
  }

  get pids() {
    return this.children.map((c) => c.pid);
  }

  askOne(child, msg, timeoutMs) {
    const id = ++this.seq;
    if (!child.connected) return Promise.reject(new Error(`sender is gone (${msg.type})`));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`sender did not answer ${msg.type}`)), timeoutMs);
      this.waiters.set(id, (m) => {
        clearTimeout(t);
        resolve(m);
      });
      child.send({ ...msg, id });
    });
  }

  ask(msg, timeoutMs = 30_000) {
    return Promise.all(this.children.map((c) => this.askOne(c, msg, timeoutMs)));
  }

  /** Each process gets 1/procs of the rate and of the in-flight cap. */
  share(config) {
    const n = this.children.length;
    return {
      ...config,
      ...(config.rate !== undefined ? { rate: config.rate / n } : {}),
      ...(config.maxInflight ? { maxInflight: Math.max(1, Math.ceil(config.maxInflight / n)) } : {}),
    };
  }

  async each(type, config) {
    await this.ask({ type, config: this.share(config) });
    return { ok: true };
  }

  /** config: { host, port, apiKey, rooms, rate, kinds, bodyBytes, priority, maxInflight, maxMs } */
  start(config) {
    return this.each('start', config);
  }
  rate(config) {
    return this.each('rate', config);
  }
  async window(reset = true) {
    const rs = await this.ask({ type: 'window', reset });
    const rtt = new Hist();
    const out = { sent: 0, ok: 0, shown: 0, hidden: 0, behind: 0, status: {}, errors: {}, inflight: 0 };
    for (const { id: _id, rtt: _s, rttHist, ...r } of rs) {
      addInto(out, r);
      rtt.merge(rttHist);
    }
    // windowMs: the processes' mean window length (each measures its own)
    return { ...out, windowMs: out.windowMs / rs.length, rtt: rtt.summary() };
  }
  async drain(timeoutMs) {
    const rs = await this.ask({ type: 'drain', timeoutMs }, (timeoutMs ?? 15_000) + 5000);
    return { inflight: rs.reduce((a, r) => a + r.inflight, 0) };
  }
  /** Idempotent: the bench stops it, then its cleanup does again. */
  stop() {
    this.stopped ??= Promise.all(
      this.children.map(async (child) => {
        if (child.exitCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        try {
          await this.askOne(child, { type: 'stop' }, 3000);
        } catch {}
        await Promise.race([exited, sleep(1000)]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }),
    );
    return this.stopped;
  }
}
