// Parent side of the sender process.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { onCleanup, sleep } from './common.mjs';

const WORKER = fileURLToPath(new URL('./sender-worker.mjs', import.meta.url));

export class Sender {
  constructor() {
    this.seq = 0;
    this.waiters = new Map();
    this.child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    // a send on a closed channel reports here, not as an uncaught ERR_IPC_CHANNEL_CLOSED
    this.child.on('error', (err) => console.error(`sender: ${err.message}`));
    this.child.on('message', (m) => {
      const w = this.waiters.get(m.id);
      if (w) {
        this.waiters.delete(m.id);
        w(m);
      }
    });
    onCleanup(() => this.stop());
  }

  get pid() {
    return this.child.pid;
  }

  ask(msg, timeoutMs = 30_000) {
    const id = ++this.seq;
    if (!this.child.connected) return Promise.reject(new Error(`sender is gone (${msg.type})`));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`sender did not answer ${msg.type}`)), timeoutMs);
      this.waiters.set(id, (m) => {
        clearTimeout(t);
        resolve(m);
      });
      this.child.send({ ...msg, id });
    });
  }

  /** config: { host, port, apiKey, rooms, rate, kinds, bodyBytes, priority, maxInflight, maxMs } */
  start(config) {
    return this.ask({ type: 'start', config });
  }
  rate(config) {
    return this.ask({ type: 'rate', config });
  }
  window(reset = true) {
    return this.ask({ type: 'window', reset });
  }
  drain(timeoutMs) {
    return this.ask({ type: 'drain', timeoutMs }, (timeoutMs ?? 15_000) + 5000);
  }
  /** Idempotent: the bench stops it, then its cleanup does again. */
  stop() {
    this.stopped ??= (async () => {
      if (this.child.exitCode !== null) return;
      const exited = new Promise((r) => this.child.once('exit', r));
      try {
        await this.ask({ type: 'stop' }, 3000);
      } catch {}
      await Promise.race([exited, sleep(1000)]);
      if (this.child.exitCode === null) this.child.kill('SIGKILL');
    })();
    return this.stopped;
  }
}
