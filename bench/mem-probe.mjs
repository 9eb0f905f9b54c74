#!/usr/bin/env node
// Memory per member of one server process, quickly (a dev tool, ≤ ~2 min at 10k): starts one
// roomcast worker (dist build, in-memory bus) and/or the raw uWS peer, connects --members into
// one room from --gens generator processes, and reads the server's RSS growth over the empty
// server (as big-room does), then its JS heap after a full GC (through the inspector) connected
// and again after the members left: the difference is what the members hold. A heap snapshot of
// the connected server says which object types hold the memory. The resident part of V8's young
// generation is shown beside the RSS: filling it is part of the growth, a per-process cost.
import { parseFlags, main, log, sleep, freePort, writeResult, needBuild, commandLine } from './lib/common.mjs';
import { Fleet, addrsFor } from './lib/gen.mjs';
import { startTarget, http } from './lib/targets.mjs';
import { totalRss } from './lib/proc.mjs';
import { writeFileSync } from 'node:fs';
import WebSocket from 'ws';

const f = parseFlags(
  {
    members: { type: 'number', default: 10_000, help: 'members in the one room (one server process: ≤ ~18k under the open-file cap)' },
    targets: { type: 'list', default: ['roomcast', 'uws'], help: 'roomcast and/or uws (the raw uWS peer)' },
    gens: { type: 'number', default: 2, help: 'generator processes' },
    client: { type: 'string', default: 'lite', help: 'member client: lite (bare RFC 6455) or ws' },
    connectRate: { type: 'number', default: 4000, help: 'connects per second' },
    settleS: { type: 'number', default: 5, help: 'idle seconds before each reading (big-room: 5)' },
    snapshot: { type: 'boolean', default: true, help: 'heap snapshot of the connected server: the object types that dominate' },
    top: { type: 'number', default: 25, help: 'object types listed from the snapshot' },
    nodeArgs: { type: 'list', default: [], help: 'extra node flags of the server process, e.g. --max-semi-space-size=2' },
    snapshotFile: { type: 'string', default: '', help: 'also write the connected roomcast heap snapshot here (for DevTools)' },
    save: { type: 'boolean', default: false, help: 'write the results to bench/results/mem-probe-<date>.json' },
  },
  undefined,
  'node bench/mem-probe.mjs [flags]   (npm run build first)\n  e.g. --members 15000 --targets roomcast',
);

/** A minimal Chrome DevTools Protocol session over the server's inspector WebSocket. */
class Inspector {
  static async connect(port) {
    const list = JSON.parse((await http('GET', `http://127.0.0.1:${port}/json/list`)).text);
    const ws = new WebSocket(list[0].webSocketDebuggerUrl, { perMessageDeflate: false, maxPayload: 2 ** 30 });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new Inspector(ws);
  }

  constructor(ws) {
    this.ws = ws;
    this.seq = 0;
    this.pending = new Map();
    this.listeners = new Map();
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.id !== undefined) {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.error) p?.reject(new Error(m.error.message));
        else p?.resolve(m.result);
      } else this.listeners.get(m.method)?.(m.params);
    });
  }

  call(method, params = {}) {
    const id = ++this.seq;
    this.ws.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  async evaluate(expression) {
    const r = await this.call('Runtime.evaluate', { expression, returnByValue: true });
    if (r.exceptionDetails) throw new Error(`inspector: ${r.exceptionDetails.text}`);
    return r.result.value;
  }

  /** JS heap used after a full GC (the server runs with --expose-gc). */
  heapUsed() {
    return this.evaluate('gc(), gc(), process.memoryUsage().heapUsed');
  }

  /** Resident bytes of each V8 heap space, and the bytes outside the heap V8 knows of, now (no GC). */
  residency() {
    return this.evaluate(`(() => {
      const out = {};
      for (const s of process.getBuiltinModule('v8').getHeapSpaceStatistics()) out[s.space_name] = s.physical_space_size;
      const m = process.memoryUsage();
      out.external = m.external;
      return out;
    })()`);
  }

  /** Takes a heap snapshot (it runs a full GC first) and returns its text. */
  async snapshot() {
    const chunks = [];
    this.listeners.set('HeapProfiler.addHeapSnapshotChunk', (p) => chunks.push(p.chunk));
    await this.call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    this.listeners.delete('HeapProfiler.addHeapSnapshotChunk');
    return chunks.join('');
  }

  close() {
    this.ws.close();
  }
}

/** Self size and count per object type (constructor name, or the kind for strings, code, arrays…). */
function byType(snap) {
  const { node_fields: fields, node_types: types } = snap.snapshot.meta;
  const width = fields.length;
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((n) => fields.indexOf(n));
  const typeNames = types[iType];
  const nodes = snap.nodes;
  const out = new Map();
  let total = 0;
  for (let i = 0; i < nodes.length; i += width) {
    const type = typeNames[nodes[i + iType]];
    const size = nodes[i + iSize];
    total += size;
    const named = type === 'object' || type === 'closure' || type === 'native' || type === 'hidden' || type === 'array' || type === 'code' || type === 'object shape';
    const key = named ? `${type} ${String(snap.strings[nodes[i + iName]]).slice(0, 60)}` : type;
    const e = out.get(key);
    if (e) {
      e.count++;
      e.bytes += size;
    } else out.set(key, { count: 1, bytes: size });
  }
  return { total, types: out };
}

const kib = (bytes, members) => +(bytes / 1024 / Math.max(1, members)).toFixed(3);
const mib = (bytes) => +(bytes / 2 ** 20).toFixed(1);

async function probe(kind) {
  const inspectPort = await freePort();
  const target = await startTarget(kind, {
    workers: 1,
    tickMs: 50,
    nodeArgs: ['--expose-gc', `--inspect=127.0.0.1:${inspectPort}`, ...f.nodeArgs],
    args: ['--room-chat-budget', '1000000', '--api-rate', '1000000'],
  });
  let fleet;
  let insp;
  try {
    insp = await Inspector.connect(inspectPort);
    // No GC is forced before the RSS readings (it would start V8's memory reducer): they are
    // taken as big-room takes them.
    await sleep(f.settleS * 1000);
    const rssEmpty = totalRss(target.pids());
    const resEmpty = await insp.residency();
    fleet = new Fleet({
      procs: f.gens, members: f.members, proto: target.proto, client: f.client, urls: target.urls, rooms: ['big'],
      addrs: addrsFor(f.members), secret: target.secret, uidPrefix: 'm', tokenTtlSec: 7200, latencySample: 8,
      needLikes: false, connectRate: f.connectRate, maxPending: 1000, connectTimeoutMs: 30_000, maxMs: 600_000,
    });
    await fleet.start();
    const conn = await fleet.waitConnected({ label: `${target.label}: `, timeoutMs: 120_000 });
    const n = conn.opened;
    await sleep(f.settleS * 1000);
    const rssConnected = totalRss(target.pids());
    const resConnected = await insp.residency();
    const heapConnected = await insp.heapUsed();
    // The RSS growth split: each V8 space's resident growth, external memory, and the rest
    // (native: uWS's sockets and subscriptions, malloc arenas).
    const growth = {};
    for (const k of Object.keys(resConnected)) growth[k] = kib(resConnected[k] - (resEmpty[k] ?? 0), n);
    const v8Growth = Object.keys(resConnected).filter((k) => k !== 'external').reduce((a, k) => a + resConnected[k] - (resEmpty[k] ?? 0), 0);
    growth.native = kib(rssConnected - rssEmpty - v8Growth, n);
    const out = {
      kind, label: target.label, members: n,
      rssMiB: { empty: mib(rssEmpty), connected: mib(rssConnected) },
      rssPerMemberKiB: kib(rssConnected - rssEmpty, n),
      youngResidentMiB: { empty: mib(resEmpty.new_space), connected: mib(resConnected.new_space) },
      growthPerMemberKiB: growth,
      heapUsedMiB: { connected: mib(heapConnected) },
    };
    log(`${target.label}, ${n} members: RSS ${out.rssMiB.empty} → ${out.rssMiB.connected} MiB = ${out.rssPerMemberKiB} KiB/member, ` +
      `of which V8's young generation ${out.youngResidentMiB.empty} → ${out.youngResidentMiB.connected} MiB; JS heap after GC ${out.heapUsedMiB.connected} MiB`);
    log(`  RSS growth per member by part (KiB; native = RSS growth less V8's resident spaces): ${Object.entries(growth).filter(([, v]) => Math.abs(v) >= 0.005).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    if (f.snapshot) {
      const text = await insp.snapshot();
      if (f.snapshotFile && kind === 'roomcast') writeFileSync(f.snapshotFile, text);
      const { total, types } = byType(JSON.parse(text));
      const top = [...types].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, f.top);
      out.snapshot = { totalMiB: mib(total), top: top.map(([type, e]) => ({ type, count: e.count, bytes: e.bytes, perMember: +(e.bytes / n).toFixed(1) })) };
      log(`  heap snapshot: ${out.snapshot.totalMiB} MiB; by self size (bytes per member, count):`);
      for (const t of out.snapshot.top) log(`    ${String(t.perMember).padStart(8)}  ${String(t.count).padStart(8)}  ${t.type}`);
    }
    await fleet.stop();
    fleet = undefined;
    await sleep(f.settleS * 1000);
    const heapLeft = await insp.heapUsed();
    out.heapUsedMiB.left = mib(heapLeft);
    // what the members held: connected less the same server after they left
    out.heapUsedPerMemberKiB = kib(heapConnected - heapLeft, n);
    log(`  after the members left: JS heap ${out.heapUsedMiB.left} MiB: ${out.heapUsedPerMemberKiB} KiB/member of JS heap held by the members`);
    return out;
  } finally {
    insp?.close();
    await fleet?.stop();
    await target.stop();
  }
}

main(async () => {
  await needBuild();
  if (f.members > 18_000) throw new Error('one server process holds at most ~18k members under the open-file cap');
  const runs = [];
  for (const kind of f.targets) runs.push(await probe(kind));
  const rc = runs.find((r) => r.kind === 'roomcast');
  const uws = runs.find((r) => r.kind === 'uws');
  if (rc && uws) log(`roomcast ÷ raw uWS RSS/member: ×${(rc.rssPerMemberKiB / uws.rssPerMemberKiB).toFixed(2)}`);
  if (f.save) log(`results: ${writeResult('mem-probe', { flags: f, command: commandLine('mem-probe'), runs })}`);
}, 600_000);
