#!/usr/bin/env node
// Scenario 5, api: autocannon against POST /v1/rooms/:room/messages and GET /v1/rooms/:room
// with members attached to the room (they receive what is posted; their seqs are checked).
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseFlags, main, log, writeResult, sleep, needPackages, needBuild, onCleanup, commandLine } from './lib/common.mjs';
import { Fleet, addrsFor } from './lib/gen.mjs';
import { launchRedis } from './lib/redis.mjs';
import { startTarget } from './lib/targets.mjs';
import { mark, diff } from './lib/proc.mjs';
import { baseline, waitQuiet, metricsSnapshot } from './lib/steps.mjs';

const f = parseFlags(
  {
    workers: { type: 'numbers', default: [1, 2], help: 'worker counts to run' },
    members: { type: 'number', default: 2000, help: 'members attached to the room' },
    connections: { type: 'number', default: 256, help: 'autocannon connections (a POST is answered after the log append of its tick, so req/s ≈ connections / tick)' },
    durationS: { type: 'number', default: 20, help: 'seconds per autocannon run' },
    kind: { type: 'string', default: 'chat', help: 'kind posted (chat: subject to the room budget; gift/system: never dropped)' },
    apiRate: { type: 'number', default: 1_000_000, help: 'roomcast --api-rate (per room; the default 1000 answers 429 beyond it)' },
    budget: { type: 'number', default: 60, help: 'roomcast --room-chat-budget' },
    label: { type: 'string', default: '', help: 'free text stored with the results' },
  },
  undefined,
  'npm run bench:api -- [flags]',
);

const WORKER = fileURLToPath(new URL('./lib/autocannon-worker.mjs', import.meta.url));

function cannon(o) {
  return new Promise((resolve, reject) => {
    const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    onCleanup(() => child.exitCode === null && child.kill('SIGKILL'));
    const t = setTimeout(() => child.kill('SIGKILL'), (o.durationS + 30) * 1000);
    child.once('message', (m) => {
      clearTimeout(t);
      resolve(m);
    });
    child.once('exit', (code) => code !== 0 && reject(new Error(`autocannon exited ${code}`)));
    child.send(o);
  });
}

main(async () => {
  await needBuild();
  await needPackages(['autocannon'], 'api');
  const redis = f.workers.some((w) => w > 1) ? await launchRedis() : null;
  const room = 'api';
  const runs = [];
  for (const workers of f.workers) {
    if (redis) await redis.flush();
    const target = await startTarget('roomcast', {
      workers,
      redisUrl: redis?.url,
      args: ['--api-rate', String(f.apiRate), '--room-chat-budget', String(f.budget)],
    });
    const fleet = new Fleet({
      procs: 1, members: f.members, proto: 'roomcast', client: 'lite', urls: target.urls, rooms: [room],
      addrs: addrsFor(f.members), secret: target.secret, uidPrefix: 'a', latencySample: 8, connectRate: 4000, maxMs: 3_600_000,
    });
    try {
      await fleet.start();
      const conn = await fleet.waitConnected({ label: `api ×${workers}: ` });
      await baseline(target, fleet, [room]);
      const auth = { Authorization: `Bearer ${target.apiKey}` };
      const run = { workers, members: conn.opened, tests: [] };
      for (const t of [
        { name: `POST /v1/rooms/:room/messages (${f.kind})`, method: 'POST', path: `/v1/rooms/${room}/messages`, body: JSON.stringify({ kind: f.kind, body: 'hello from autocannon', uid: 'bench' }), headers: { ...auth, 'Content-Type': 'application/json' } },
        { name: 'GET /v1/rooms/:room', method: 'GET', path: `/v1/rooms/${room}`, headers: auth },
      ]) {
        log(`api ×${workers}: ${t.name}, ${f.connections} connections, ${f.durationS} s`);
        await fleet.window(true);
        const c0 = mark(target.pids());
        const m0 = await metricsSnapshot(target);
        const r = await cannon({ url: `${target.apiBase}${t.path}`, method: t.method, headers: t.headers, body: t.body, connections: f.connections, durationS: f.durationS });
        const cpu = diff(c0);
        await waitQuiet(fleet, 1500, 30_000);
        const m1 = await metricsSnapshot(target);
        const w = await fleet.window(true);
        const tail = await fleet.expect(await target.finalSeqs([room]));
        const row = {
          name: t.name, ...r, serverCpuPct: cpu.cpuPct,
          members: { msgsPerSec: Math.round(w.msgs / f.durationS), framesPerSec: Math.round(w.frames / f.durationS), latencyMs: w.lat.summary(), missed: tail.totalMissed, tailBehind: tail.behind },
          sampledOut: m0 && m1 ? m1.received.sampledOut - m0.received.sampledOut : null,
        };
        run.tests.push(row);
        log(`  ${Math.round(r.requestsPerSec)} req/s, p50 ${r.latencyMs.p50} p99 ${r.latencyMs.p99} ms, non-2xx ${r.non2xx}, errors ${r.errors}; server CPU ${cpu.cpuPct}%; members got ${row.members.msgsPerSec} msgs/s, misses ${tail.totalMissed}`);
        await sleep(1000);
      }
      runs.push(run);
    } finally {
      await fleet.stop();
      await target.stop();
    }
  }
  const file = writeResult('api', { flags: f, command: commandLine('api'), runs });
  log(`results: ${file}`);
}, 2 * 3_600_000);
