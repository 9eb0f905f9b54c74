#!/usr/bin/env node
// Scenario 4, million: --members real WebSocket members in one room on this machine, over
// --workers roomcast workers (~18k each, Redis streams between them) and as many generator
// processes. Measures the connect rate, RSS per member (server and generator), the time for
// one batch to reach every member, zero seq gaps, and Redis ops/s against a --baseline-members
// run on the same cluster. Checks the kernel/limit settings up front (see bench/README.md).
import { parseFlags, main, log, writeResult, sleep, needBuild, commandLine } from './lib/common.mjs';
import { Fleet, sourceAddrs } from './lib/gen.mjs';
import { launchRedis } from './lib/redis.mjs';
import { Sender } from './lib/sender.mjs';
import { startTarget, http } from './lib/targets.mjs';
import { mark, diff, totalRss } from './lib/proc.mjs';
import { baseline, waitQuiet } from './lib/steps.mjs';
import { checkLimits, memAvailable } from './lib/limits.mjs';

const f = parseFlags(
  {
    members: { type: 'number', default: 1_000_000, help: 'members in the room' },
    workers: { type: 'number', default: 56, help: 'roomcast workers (≤ ~18k members each)' },
    gens: { type: 'number', default: 0, help: 'generator processes (0 = members/18000)' },
    addrs: { type: 'number', default: 0, help: 'loopback source addresses (0 = members/16000, at least 2)' },
    connectRate: { type: 'number', default: 20_000, help: 'connect attempts per second (all generators); the server sets the real rate' },
    maxPending: { type: 'number', default: 0, help: 'handshakes in flight, all generators (0 = 256 per worker, at most 4000: more overflows the listen backlogs)' },
    baselineMembers: { type: 'number', default: 1000, help: 'members of the comparison run (0 = skip)' },
    probes: { type: 'number', default: 5, help: 'single-batch reach probes' },
    steadyRate: { type: 'number', default: 0.2, help: 'API messages per second during the steady phase' },
    steadyS: { type: 'number', default: 30, help: 'steady phase seconds' },
    idleS: { type: 'number', default: 10, help: 'idle Redis ops/s measurement seconds' },
    reachTimeoutS: { type: 'number', default: 180, help: 'longest wait for one probe to reach everyone' },
    connectTimeoutS: { type: 'number', default: 1800, help: 'longest connect phase' },
    stallS: { type: 'number', default: 180, help: 'end the connect phase when no member connected for this long (then measure those connected)' },
    askTimeoutS: { type: 'number', default: 180, help: 'longest wait for a generator to answer a control message (a starved box answers late)' },
    skipChecks: { type: 'boolean', default: false, help: 'run even if a limit check fails' },
    label: { type: 'string', default: '', help: 'free text stored with the results' },
  },
  undefined,
  'npm run bench:million -- [flags]',
);

const ROOM = 'million';

async function probe(target, fleet, n) {
  await fleet.window(true);
  let t0;
  let r;
  // 503 UNAVAILABLE means "not logged, not sent" (a starved worker's Redis append timed out):
  // what any API client does then is post again.
  for (let attempt = 1; ; attempt++) {
    t0 = Date.now();
    r = await http('POST', `${target.apiBase}/v1/rooms/${ROOM}/messages`, {
      headers: { Authorization: `Bearer ${target.apiKey}` },
      body: { kind: 'system', body: `probe ${n}` },
      timeoutMs: 30_000,
    });
    if (r.status !== 503 || attempt === 5) break;
    log(`probe ${n}: 503 ${r.text}; posting again`);
    await sleep(1000);
  }
  if (r.status !== 202) throw new Error(`probe post: ${r.status} ${r.text}`);
  const { seq } = JSON.parse(r.text);
  const deadline = t0 + f.reachTimeoutS * 1000;
  let at;
  for (;;) {
    at = await fleet.reached([seq]);
    if (at.reached >= at.open || Date.now() > deadline) break;
    await sleep(200);
  }
  const w = await fleet.window(true);
  return {
    seq,
    reached: at.reached,
    open: at.open,
    complete: at.reached >= at.open,
    ackMs: null,
    reachAllMs: w.lastFrameAt ? w.lastFrameAt - t0 : null,
    firstMs: w.firstFrameAt ? w.firstFrameAt - t0 : null,
    latencyMs: w.frameLat.summary(),
  };
}

async function phase(name, target, redis, sender, members, gens, addrs) {
  log(`=== ${name}: ${members} members over ${gens} generator processes, ${addrs.length} source addresses`);
  const serverPids = target.pids();
  const rssBefore = totalRss(serverPids);
  const availBefore = memAvailable();
  const fleet = new Fleet({
    procs: gens, members, proto: 'roomcast', client: 'lite', urls: target.urls, rooms: [ROOM], addrs,
    secret: target.secret, uidPrefix: `${name}-`, tokenTtlSec: 7200, latencySample: 0, connectRate: f.connectRate,
    maxPending: f.maxPending || Math.min(4000, 256 * f.workers), connectTimeoutMs: 60_000, retries: 5, maxMs: 6 * 3_600_000,
    askTimeoutMs: f.askTimeoutS * 1000,
  });
  const out = { members, gens, addrs: addrs.length };
  try {
    await fleet.start();
    const conn = await fleet.waitConnected({ label: `${name}: `, timeoutMs: f.connectTimeoutS * 1000, stallMs: f.stallS * 1000 });
    out.connect = { stopped: conn.stopped, opened: conn.opened, failed: conn.failed, closed: conn.closed, secs: +conn.secs.toFixed(1), perSec: Math.round(conn.perSec), failReasons: conn.failReasons, closes: conn.closes };
    await sleep(3000);
    const rssAfter = totalRss(target.pids());
    const g = await fleet.window(false);
    // machine-wide: server + generators + kernel socket memory (other work on the box adds noise)
    out.systemMemPerMemberKiB = +((availBefore - memAvailable()) / 1024 / Math.max(1, conn.opened)).toFixed(2);
    out.serverRssMiB = { before: +(rssBefore / 2 ** 20).toFixed(0), after: +(rssAfter / 2 ** 20).toFixed(0) };
    out.serverRssPerMemberKiB = +((rssAfter - rssBefore) / 1024 / Math.max(1, conn.opened)).toFixed(2);
    out.genRssMiB = { start: +(conn.rssStart / 2 ** 20).toFixed(0), connected: +(g.rss / 2 ** 20).toFixed(0) };
    out.genRssPerMemberKiB = +((g.rss - conn.rssStart) / 1024 / Math.max(1, conn.opened)).toFixed(2);
    log(`${name}: server RSS ${out.serverRssMiB.before} → ${out.serverRssMiB.after} MiB (${out.serverRssPerMemberKiB} KiB/member); generators ${out.genRssMiB.start} → ${out.genRssMiB.connected} MiB (${out.genRssPerMemberKiB} KiB/member); machine memory used ${out.systemMemPerMemberKiB} KiB/member`);
    await baseline(target, fleet, [ROOM]);

    // idle: what the cluster costs Redis with nobody talking
    const r0 = await redis.counters();
    const c0 = mark(target.pids());
    await sleep(f.idleS * 1000);
    out.idle = { redis: redis.rate(r0, await redis.counters()), serverCpuPct: diff(c0).cpuPct };
    log(`${name}: idle Redis ${out.idle.redis.opsPerSec} ops/s, server CPU ${out.idle.serverCpuPct}%`);

    // single-batch reach probes
    out.probes = [];
    for (let n = 0; n < f.probes; n++) {
      const p = await probe(target, fleet, n);
      out.probes.push(p);
      log(`${name}: probe ${n}: reached ${p.reached}/${p.open} in ${p.reachAllMs} ms (first ${p.firstMs} ms, p50 ${p.latencyMs.p50} p99 ${p.latencyMs.p99} ms)`);
      await waitQuiet(fleet, 1000, 30_000);
    }

    // steady: a slow message rate, Redis ops/s and CPU
    await fleet.window(true);
    const r1 = await redis.counters();
    const c1 = mark(target.pids());
    await sender.rate({ rate: f.steadyRate, rooms: [ROOM] });
    await sleep(f.steadyS * 1000);
    await sender.rate({ rate: 0, rooms: [ROOM] });
    const cpu = diff(c1);
    const r2 = await redis.counters();
    await sender.drain(30_000);
    await waitQuiet(fleet, 2000, f.reachTimeoutS * 1000);
    const w = await fleet.window(true);
    out.steady = {
      rate: f.steadyRate,
      redis: redis.rate(r1, r2),
      serverCpuPct: cpu.cpuPct,
      frames: w.frames,
      frameLatencyMs: w.frameLat.summary(),
    };
    log(`${name}: steady ${f.steadyRate} msg/s: Redis ${out.steady.redis.opsPerSec} ops/s, server CPU ${out.steady.serverCpuPct}%, frame latency ${JSON.stringify(out.steady.frameLatencyMs)}`);
    out.tail = await fleet.expect(await target.finalSeqs([ROOM]));
    out.zeroGaps = out.tail.totalMissed === 0 && out.tail.behind === 0;
    log(`${name}: seq check ${JSON.stringify(out.tail)} → ${out.zeroGaps ? 'zero gaps' : 'GAPS'}`);
  } catch (err) {
    // A phase that cannot go on keeps what it measured; the report says where it stopped.
    out.error = String(err.message);
    log(`${name}: stopped: ${err.message}`);
  } finally {
    await fleet.stop();
  }
  return out;
}

main(async () => {
  await needBuild();
  const gens = f.gens || Math.ceil(f.members / 18_000);
  const addrs = sourceAddrs(f.addrs || Math.max(2, Math.ceil(f.members / 16_000)));
  const perGen = Math.ceil(f.members / gens);
  const perWorker = Math.ceil(f.members / f.workers);
  log(`million: ${f.members} members, ${f.workers} workers (~${perWorker} each), ${gens} generators (${perGen} each), ${addrs.length} source addresses`);
  if (perWorker > 19_000) log(`WARNING: ~${perWorker} members per worker is over the ~19k open files a process may hold; SO_REUSEPORT spreads unevenly, keep it ≤ 18k`);
  const checks = await checkLimits(
    { members: f.members, perProcess: Math.max(perGen, Math.ceil(perWorker * 1.1)), processes: f.workers + gens + 4, addrs: addrs.length },
    { strict: !f.skipChecks },
  );
  const redis = await launchRedis();
  const target = await startTarget('roomcast', {
    workers: f.workers,
    redisUrl: redis.url,
    args: ['--idle-timeout-sec', '120', '--members-push-ms', '5000'],
  });
  const sender = new Sender();
  await sender.start({ host: target.urls[0].host, port: target.urls[0].port, apiKey: target.apiKey, rooms: [ROOM], rate: 0, kinds: ['system'], priority: 'high' });
  const result = { workers: f.workers, checks };
  if (f.baselineMembers > 0) result.baseline = await phase('baseline', target, redis, sender, f.baselineMembers, 1, addrs.slice(0, 2));
  result.full = await phase('full', target, redis, sender, f.members, gens, addrs);
  if (result.baseline?.steady && result.full.steady) {
    result.redisVsBaseline = {
      idle: +(result.full.idle.redis.opsPerSec / Math.max(1, result.baseline.idle.redis.opsPerSec)).toFixed(2),
      steady: +(result.full.steady.redis.opsPerSec / Math.max(1, result.baseline.steady.redis.opsPerSec)).toFixed(2),
    };
    log(`Redis ops/s full/baseline: idle ×${result.redisVsBaseline.idle}, steady ×${result.redisVsBaseline.steady}`);
  }
  await sender.stop();
  await target.stop();
  const file = writeResult('million', { flags: f, command: commandLine('million'), result });
  log(`results: ${file}`);
}, 8 * 3_600_000);
