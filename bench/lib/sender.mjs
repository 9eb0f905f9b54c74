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
  async stop() {
    if (this.child.exitCode !== null) return;
    try {
      await this.ask({ type: 'stop' }, 3000);
    } catch {}
    await sleep(200);
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}
