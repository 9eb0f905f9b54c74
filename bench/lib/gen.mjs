// The load-generator fleet: forks gen-worker processes (each under the per-process open-file
// cap), spreads members over them, over the target URLs and over loopback source addresses,
// and aggregates what they measure.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Hist } from './hist.mjs';
import { log, onCleanup, sleep } from './common.mjs';

const WORKER = fileURLToPath(new URL('./gen-worker.mjs', import.meta.url));
const HISTS = ['lat', 'frameLat', 'hiLat', 'rtt'];

/** Loopback source addresses 127.0.0.2 … (each has ~28k ephemeral ports). */
export function sourceAddrs(n) {
  return Array.from({ length: n }, (_v, k) => `127.0.${Math.floor((k + 2) / 256)}.${(k + 2) % 256}`);
}

/** Enough source addresses that none carries more than `perAddr` sockets (at least 2). */
export function addrsFor(totalSockets, perAddr = 20_000) {
  return sourceAddrs(Math.max(2, Math.ceil(totalSockets / perAddr)));
}

function mergeInto(acc, s) {
  for (const [k, v] of Object.entries(s)) {
    if (k === 'id') continue;
    if (k === 'lostSamples') {
      if (v) acc[k] = [...(acc[k] ?? []), ...v].slice(0, 5);
      continue;
    }
    if (HISTS.includes(k)) {
      (acc[k] ??= new Hist()).merge(v);
    } else if (k === 'cpu') {
      acc.cpuUs = (acc.cpuUs ?? 0) + v.user + v.system;
    } else if (k === 'lastFrameAt') acc[k] = Math.max(acc[k] ?? 0, v);
    else if (k === 'firstFrameAt') acc[k] = v && (!acc[k] || v < acc[k]) ? v : acc[k] ?? 0;
    else if (typeof v === 'number') acc[k] = (acc[k] ?? 0) + v;
    else if (v && typeof v === 'object') mergeInto((acc[k] ??= {}), v);
  }
  return acc;
}

export class Fleet {
  /**
   * o: { procs, members, proto, client, urls: [{host,port}], rooms: [..], addrs, secret,
   *      uidPrefix, latencySample, needLikes, hiLatency, connectRate (total/s), maxPending,
   *      connectTimeoutMs, retries, maxMs, senders (total), ... }
   */
  constructor(o) {
    this.o = o;
    this.children = [];
    this.seq = 0;
    this.waiters = new Map();
  }

  async start() {
    const { procs, members } = this.o;
    this.startedAt = Date.now();
    const per = Math.ceil(members / procs);
    if (per > 19_000) throw new Error(`${per} members per generator process is over the ~19k open-file budget; use more --gens`);
    let first = 0;
    let started = 0;
    const starts = [];
    for (let p = 0; p < procs && first < members; p++) {
      const count = Math.min(per, members - first);
      const child = fork(WORKER, [], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        env: { ...process.env, GEN_MAX_MS: String(this.o.maxMs ?? 3_600_000) },
        execArgv: this.o.execArgv ?? [],
      });
      child.on('message', (m) => {
        const w = this.waiters.get(m.id);
        if (w) {
          this.waiters.delete(m.id);
          w(m);
        }
      });
      // a send on a closed channel reports here (a generator that died); ask() rejects it too
      child.on('error', (err) => log(`generator ${p}: ${err.message}`));
      child.on('exit', (code) => {
        if (!this.stopping) log(`generator ${p} exited with ${code}`);
      });
      const sendersHere = Math.max(0, Math.min(count, (this.o.senders ?? 0) - first));
      this.children.push({ child, first, count });
      const config = {
        ...this.o,
        members: count,
        totalMembers: members,
        firstIndex: first,
        connectRate: Math.max(1, (this.o.connectRate ?? 5000) / procs),
        maxPending: Math.max(16, Math.floor((this.o.maxPending ?? 2000) / procs)),
        connectTimeoutMs: this.o.connectTimeoutMs ?? 30_000,
        retries: this.o.retries ?? 3,
        senders: sendersHere,
        pingEveryMs: 0,
      };
      // Started side by side: on a loaded box one Node start takes seconds.
      starts.push(
        this.ask(this.children.length - 1, { type: 'start', config }).then(() => {
          if (procs > 8 && ++started % 8 === 0) log(`started ${started}/${procs} generator processes`);
        }),
      );
      first += count;
    }
    await Promise.all(starts);
    onCleanup(() => this.stop());
  }

  pids() {
    return this.children.map((c) => c.child.pid);
  }

  ask(idx, msg, timeoutMs = this.o.askTimeoutMs ?? 30_000) {
    const id = ++this.seq;
    const { child } = this.children[idx];
    if (!child.connected) return Promise.reject(new Error(`generator ${idx} is gone (${msg.type})`));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters.delete(id);
        reject(new Error(`generator ${idx} did not answer ${msg.type} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(id, (m) => {
        clearTimeout(t);
        resolve(m);
      });
      child.send({ ...msg, id });
    });
  }

  async all(msg, timeoutMs) {
    return Promise.all(this.children.map((_c, i) => this.ask(i, msg, timeoutMs)));
  }

  async sum(msg, timeoutMs) {
    const rs = await this.all(msg, timeoutMs);
    return rs.reduce((acc, r) => mergeInto(acc, r), {});
  }

  /** Waits until every member is open (and joined, for protocols that join), printing progress. */
  async waitConnected({ timeoutMs = 600_000, needJoined = true, label = '', stallMs = Infinity } = {}) {
    const t0 = this.startedAt ?? Date.now();
    let lastPrint = 0;
    let c;
    let stopped = null;
    let progressAt = Date.now();
    let lastOpened = -1;
    for (;;) {
      let polled;
      try {
        polled = await this.sum({ type: 'counts' });
      } catch (err) {
        // A generator starved of CPU answers late: skip this poll, the phase's own limits still hold.
        log(`${label}progress poll failed (${err.message}); polling again`);
      }
      if (polled) c = polled;
      const now = Date.now();
      if (!c) {
        if (now - t0 > timeoutMs) throw new Error(`no generator answered within ${timeoutMs / 1000} s`);
        continue;
      }
      // progress = connections ever opened (members closed meanwhile do not hide new ones)
      if (c.opened + c.closed > lastOpened) {
        lastOpened = c.opened + c.closed;
        progressAt = now;
      }
      const done = c.pendingStart === 0 && c.connecting === 0 && (!needJoined || c.joined >= c.opened);
      if (done || now - lastPrint > 2000) {
        lastPrint = now;
        const secs = (now - t0) / 1000;
        log(
          `${label}connect: open ${c.opened}/${this.o.members} joined ${c.joined} failed ${c.failed}${c.closed ? ` closed ${c.closed}` : ''} ` +
            `(${Math.round(c.opened / Math.max(secs, 0.001))}/s) gen RSS ${Math.round(c.rss / 2 ** 20)} MiB`,
        );
      }
      if (done) break;
      if (now - t0 > timeoutMs) stopped = `timed out after ${Math.round(timeoutMs / 1000)} s`;
      else if (now - progressAt > stallMs) stopped = `stalled: no new member for ${Math.round(stallMs / 1000)} s`;
      if (stopped) {
        log(`${label}connect phase ${stopped} at ${c.opened} members; no new attempts from now on`);
        break;
      }
      await sleep(250);
    }
    const secs = (Date.now() - t0) / 1000;
    const perSec = c.opened / secs;
    if (stopped) c = await this.settle();
    const w = await this.sum({ type: 'window', reset: false });
    return { opened: c.opened, joined: c.joined, failed: c.failed, closed: c.closed, rssStart: c.rssStart, closes: w.closes, secs, perSec, rss: c.rss, failReasons: w.failReasons, lostSamples: w.lostSamples, stopped };
  }

  /**
   * Ends the connect phase: no new attempts; waits for those in flight to open or time out
   * (connectTimeoutMs), so what is measured next has a fixed set of members.
   */
  async settle() {
    let c = await this.sum({ type: 'stopConnecting' });
    const deadline = Date.now() + (this.o.connectTimeoutMs ?? 30_000) + 10_000;
    while ((c.connecting > 0 || c.joined < c.opened) && Date.now() < deadline) {
      await sleep(500);
      c = await this.sum({ type: 'counts' }).catch(() => c);
    }
    log(`connect phase ended: open ${c.opened}, joined ${c.joined}, in flight ${c.connecting}`);
    return c;
  }

  /** Aggregated window stats; reset starts a new window. */
  window(reset = true) {
    return this.sum({ type: 'window', reset });
  }

  /** seqs: array indexed by room index (rooms order) of the server's last seq. */
  expect(seqs) {
    return this.sum({ type: 'expect', seqs }, 120_000);
  }

  reached(seqs) {
    return this.sum({ type: 'reached', seqs });
  }

  send(config) {
    return this.all({ type: 'send', config });
  }

  stopSending() {
    return this.all({ type: 'stopSending' });
  }

  ping(everyMs) {
    return this.ask(0, { type: 'ping', everyMs });
  }

  /** Every member sends an SDK heartbeat (`ping` op) once per everyMs (0 stops them). */
  heartbeats(everyMs) {
    return this.all({ type: 'heartbeat', everyMs });
  }

  async stop() {
    if (this.stopping) return;
    this.stopping = true;
    await Promise.all(
      this.children.map(async ({ child }, i) => {
        if (child.exitCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        try {
          await this.ask(i, { type: 'stop' }, 5000);
        } catch {}
        await Promise.race([exited, sleep(3000)]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }),
    );
  }
}
