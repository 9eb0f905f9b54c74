#!/usr/bin/env node
// Scenario 4, million: --members real WebSocket members in one room on this machine, over
// --workers roomcast workers (~17k each, Redis streams between them) and as many generator
// processes. Per phase (a --baseline-members phase, then the full one), in this order: the
// connect phase (then no new attempts), RSS per member (server and generator), idle cost
// (server CPU per worker, Redis ops/s), ≥ 3 single-batch reach probes taken after the connect
// phase, each split into server and generator parts, a steady phase, and the zero-gap check.
// Checks the kernel/limit settings up front (see bench/README.md). `--curve` runs a list of
// sizes one after another (bench/million-curve.mjs).
import { readFileSync } from 'node:fs';
import { parseFlags, main, log, writeResult, sleep, needBuild, commandLine } from './lib/common.mjs';
import { Fleet, sourceAddrs } from './lib/gen.mjs';
import { launchRedis } from './lib/redis.mjs';
import { Sender } from './lib/sender.mjs';
import { startTarget, http, promByWorker, promSum } from './lib/targets.mjs';
import { mark, diff, totalRss } from './lib/proc.mjs';
import { baseline, waitQuiet } from './lib/steps.mjs';
import { checkLimits, memAvailable, MEMBERS_PER_WORKER } from './lib/limits.mjs';

const ROOM = 'million';
/** The server's --members-push-ms here: a big room's count moves in large steps anyway. */
const MEMBERS_PUSH_MS = 5000;
/** The server's --members-push-max-ms here (its default): the longest gap between two count pushes. */
const MEMBERS_PUSH_MAX_MS = 30_000;
/** The workers' age before the empty RSS reading (see phase()). */
const EMPTY_SETTLE_MS = 60_000;

const CURVE = process.argv.slice(2).some((a) => a === '--curve' || a.startsWith('--curve='));
if (CURVE) await import('./million-curve.mjs');
else runMillion();

function runMillion() {
  const f = parseFlags(
    {
      members: { type: 'number', default: 1_000_000, help: 'members in the room' },
      workers: { type: 'number', default: 0, help: `roomcast workers (0 = members/${MEMBERS_PER_WORKER}, rounded up)` },
      gens: { type: 'number', default: 0, help: 'generator processes (0 = members/18000)' },
      addrs: { type: 'number', default: 0, help: 'loopback source addresses (0 = members/16000, at least 2)' },
      connectRate: { type: 'number', default: 20_000, help: 'connect attempts per second (all generators); the server sets the real rate' },
      maxPending: { type: 'number', default: 0, help: 'handshakes in flight, all generators (0 = 256 per worker, at most 4000: more overflows the listen backlogs)' },
      baselineMembers: { type: 'number', default: 1000, help: 'members of the comparison phase on the same cluster, which also gives the per-write cost (0 = skip)' },
      probes: { type: 'number', default: 5, help: 'single-batch reach probes per phase (the issue asks for ≥ 3)' },
      steadyRate: { type: 'number', default: 0.2, help: 'API messages per second during the steady phase' },
      steadyS: { type: 'number', default: 30, help: 'steady phase seconds' },
      idleS: { type: 'number', default: 0, help: 'idle measurement seconds (server CPU, Redis ops/s); 0 = one keep-alive ping period (idle timeout - 16 s): each member is pinged once in it, at every size' },
      redisNice: { type: 'number', default: -10, help: "redis-server's nice (negative: scheduled ahead of the ~100 server and generator processes, as on a Redis host of its own; needs root; 0 = as they are)" },
      idleTimeoutSec: { type: 'number', default: 0, help: "the server's --idle-timeout-sec (0 = its default); uWS pings a silent member every idleTimeoutSec - 16 s" },
      reachTimeoutS: { type: 'number', default: 0, help: 'longest wait for one probe to be accepted and reach everyone (0 = 60 + members/2500)' },
      connectTimeoutS: { type: 'number', default: 0, help: 'longest connect phase (0 = 600 + members/250)' },
      stallS: { type: 'number', default: 180, help: 'end the connect phase when no member connected for this long (then measure those connected)' },
      askTimeoutS: { type: 'number', default: 180, help: 'longest wait for a generator to answer a control message (a starved box answers late)' },
      skipChecks: { type: 'boolean', default: false, help: 'run even if a limit check fails' },
      label: { type: 'string', default: '', help: 'free text stored with the results' },
    },
    undefined,
    'npm run bench:million -- [flags]    (or --curve 100000,200000,… : see bench/million-curve.mjs --help)',
  );
  const workers = f.workers || Math.ceil(f.members / MEMBERS_PER_WORKER);
  const reachTimeoutS = f.reachTimeoutS || Math.round(60 + f.members / 2500);
  const connectTimeoutS = f.connectTimeoutS || Math.round(600 + f.members / 250);

  /** What the workers' metrics say about the last published batch (per worker; see docs/operations.md). */
  async function scrape(target) {
    let text;
    for (let attempt = 1; !text; attempt++) {
      try {
        text = await target.metrics();
      } catch (err) {
        if (attempt === 3) {
          log(`metrics unavailable: ${err.message}`);
          return null;
        }
        await sleep(1000);
      }
    }
    return {
      batches: promByWorker(text, 'roomcast_batches_published_total'),
      deliveries: promByWorker(text, 'roomcast_deliveries_total'),
      fanoutSum: promByWorker(text, 'roomcast_fanout_seconds_sum'),
      fanoutCpu: promByWorker(text, 'roomcast_fanout_cpu_seconds_total'),
      writtenAt: promByWorker(text, 'roomcast_batch_written_timestamp_seconds'),
      lagRead: promByWorker(text, 'roomcast_batch_lag_seconds', /stage="read"/),
      lagWritten: promByWorker(text, 'roomcast_batch_lag_seconds', /stage="written"/),
      busErrors: promByWorker(text, 'roomcast_bus_errors_total'),
      busErrorsByOp: Object.fromEntries(['append', 'read', 'heartbeat', 'control', 'range'].map((op) => [op, promSum(text, 'roomcast_bus_errors_total', new RegExp(`op="${op}"`)) ?? 0])),
    };
  }

  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const r1 = (v) => (v === null || v === undefined || !Number.isFinite(v) ? null : Math.round(v * 10) / 10);

  /**
   * The probe's reach split from the workers that published it ("fresh": their batch count
   * moved). server = POST sent → the slowest worker had written the frame to all its sockets
   * (post → append, then append → written); generator = that → the last member received it.
   */
  function reachSplit(b, a, t0, lastFrameAt) {
    const ws = Object.keys(a.batches);
    const fresh = ws.filter((w) => a.batches[w] > (b?.batches[w] ?? 0) && a.writtenAt[w] > 0);
    if (fresh.length === 0) return { workers: ws.length, freshWorkers: 0 };
    const d = (k, w) => (a[k][w] ?? 0) - (b?.[k][w] ?? 0);
    const lastWrittenAt = Math.max(...fresh.map((w) => a.writtenAt[w] * 1000));
    // every worker delivered the same entry, so written-at minus its lag is the append time
    const appendedAt = median(fresh.map((w) => (a.writtenAt[w] - a.lagWritten[w]) * 1000));
    const fanoutS = fresh.map((w) => d('fanoutSum', w));
    const cpuS = sum(fresh.map((w) => d('fanoutCpu', w)));
    const deliveries = sum(fresh.map((w) => d('deliveries', w)));
    return {
      workers: ws.length,
      freshWorkers: fresh.length,
      serverMs: Math.round(lastWrittenAt - t0),
      postToAppendMs: Math.round(appendedAt - t0),
      appendToReadMaxMs: Math.round(Math.max(...fresh.map((w) => a.lagRead[w] * 1000))),
      appendToWrittenMaxMs: Math.round(Math.max(...fresh.map((w) => a.lagWritten[w] * 1000))),
      generatorMs: lastFrameAt ? Math.round(lastFrameAt - lastWrittenAt) : null,
      fanoutMaxMs: r1(Math.max(...fanoutS) * 1000),
      fanoutSumMs: r1(sum(fanoutS) * 1000),
      deliveries,
      perWriteUs: deliveries > 0 ? +((sum(fanoutS) * 1e6) / deliveries).toFixed(3) : null,
      perWriteCpuUs: deliveries > 0 ? +((cpuS * 1e6) / deliveries).toFixed(3) : null,
    };
  }

  async function probe(target, fleet, n) {
    await fleet.window(true);
    const before = await scrape(target);
    const deadline = Date.now() + reachTimeoutS * 1000;
    // 503 UNAVAILABLE means "not logged, not sent" (a starved worker's Redis append timed
    // out): what any API client does then is post again. A POST that timed out may have been
    // logged all the same (its 202 waits behind a starved worker's fan-out): posting again
    // then adds a second fan-out to every member, so the room's head decides first.
    const headers = { Authorization: `Bearer ${target.apiKey}` };
    const headOf = async () => {
      const g = await http('GET', `${target.apiBase}/v1/rooms/${ROOM}`, { headers, timeoutMs: 30_000 }).catch(() => undefined);
      return g?.status === 200 ? JSON.parse(g.text).seq : undefined;
    };
    const head0 = await headOf();
    let t0;
    let r;
    let unavailable = 0;
    let postErrors = 0;
    for (;;) {
      t0 = Date.now();
      try {
        r = await http('POST', `${target.apiBase}/v1/rooms/${ROOM}/messages`, {
          headers,
          body: { kind: 'system', body: `probe ${n}` },
          timeoutMs: 30_000,
        });
      } catch (err) {
        r = { status: 0, text: err.message };
      }
      if (r.status === 202) break;
      if (r.status === 503) unavailable++;
      else if (r.status === 0) postErrors++;
      else throw new Error(`probe post: ${r.status} ${r.text}`);
      const head = r.status === 0 && head0 !== undefined ? await headOf() : undefined;
      if (head !== undefined && head > head0) {
        log(`probe ${n}: the post that timed out was logged (head ${head0} → ${head}); not posting again`);
        r = { status: 202, text: JSON.stringify({ seq: head0 + 1 }) };
        break;
      }
      if (Date.now() > deadline) throw new Error(`probe ${n} not accepted within ${reachTimeoutS} s (${unavailable} × 503, ${postErrors} errors; last: ${r.status} ${r.text})`);
      log(`probe ${n}: ${r.status || 'error'} ${r.text}; posting again`);
      await sleep(1000);
    }
    const { seq } = JSON.parse(r.text);
    let at;
    for (;;) {
      at = await fleet.reached([seq]);
      if (at.reached >= at.open || Date.now() > deadline) break;
      await sleep(at.open > 100_000 ? 500 : 200);
    }
    const w = await fleet.window(true);
    // a worker that answers the supervisor's collection late is reported with its last
    // (older) metrics: scrape again until each has the probe's batch, for a while
    let after = await scrape(target);
    let split = after && reachSplit(before, after, t0, w.lastFrameAt);
    for (let k = 0; k < 10 && split && split.freshWorkers < split.workers; k++) {
      await sleep(2000);
      after = (await scrape(target)) ?? after;
      split = reachSplit(before, after, t0, w.lastFrameAt);
    }
    return {
      seq,
      reached: at.reached,
      open: at.open,
      complete: at.reached >= at.open,
      unavailable503: unavailable,
      postErrors,
      reachAllMs: w.lastFrameAt ? w.lastFrameAt - t0 : null,
      firstMs: w.firstFrameAt ? w.firstFrameAt - t0 : null,
      split,
      latencyMs: w.frameLat.summary(),
      membersFrames: w.membersFrames, // member-count frames in the probe's window (a fan-out beside it)
    };
  }

  async function phase(name, target, redis, sender, members, gens, addrs, idleS) {
    log(`=== ${name}: ${members} members over ${gens} generator processes, ${addrs.length} source addresses`);
    const serverPids = target.pids();
    const supervisorPid = serverPids[0];
    // A fresh worker's RSS falls for ~60 s as its start-up garbage is collected (12 idle
    // workers: 1,071 MiB at 5 s, 900 MiB from 60 s): an empty reading before that makes the
    // members' share look ~0.9 KiB smaller at 17k per worker.
    const young = EMPTY_SETTLE_MS - (Date.now() - target.readyAt);
    if (young > 0) {
      log(`${name}: ${(young / 1000).toFixed(0)} s until the workers' start-up garbage is collected, before the empty RSS reading`);
      await sleep(young);
    }
    const rssBefore = totalRss(serverPids);
    const availBefore = memAvailable();
    const fleet = new Fleet({
      procs: gens, members, proto: 'roomcast', client: 'lite', urls: target.urls, rooms: [ROOM], addrs,
      secret: target.secret, uidPrefix: `${name}-`, tokenTtlSec: 8 * 3600, // the run's own bound: no member's token expires mid-run
      latencySample: 0, connectRate: f.connectRate,
      maxPending: f.maxPending || Math.min(4000, 256 * workers), connectTimeoutMs: 60_000, retries: 5, maxMs: 6 * 3_600_000,
      askTimeoutMs: f.askTimeoutS * 1000,
    });
    const out = { members, gens, addrs: addrs.length };
    const m0 = await scrape(target);
    try {
      await fleet.start();
      const conn = await fleet.waitConnected({ label: `${name}: `, timeoutMs: connectTimeoutS * 1000, stallMs: f.stallS * 1000 });
      const connectedAt = Date.now();
      out.connect = {
        stopped: conn.stopped, opened: conn.opened, failed: conn.failed, closed: conn.closed, secs: +conn.secs.toFixed(1), perSec: Math.round(conn.perSec),
        all: conn.opened === members && !conn.stopped, failReasons: conn.failReasons, closes: conn.closes,
      };
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

      // The server pushes the room's last member count at most membersPushMaxMs after its
      // previous push, and a push is a frame to every member (at 1M as costly as a probe):
      // the idle window and the probes start after that, so they see a room with no traffic.
      const settleMs = connectedAt + MEMBERS_PUSH_MS + MEMBERS_PUSH_MAX_MS - Date.now();
      if (settleMs > 0) {
        log(`${name}: ${(settleMs / 1000).toFixed(0)} s for the last member-count push before the idle window`);
        await sleep(settleMs);
      }
      out.membersFramesBeforeIdle = (await fleet.window(false)).membersFrames;

      // idle: what the cluster costs with members connected and nobody talking
      const r0 = await redis.counters();
      const c0 = mark(target.pids());
      const w0 = await fleet.window(false);
      await sleep(idleS * 1000);
      const cpu = diff(c0);
      const w1 = await fleet.window(false);
      const supervisorCpuPct = cpu.each.find((e) => e.pid === supervisorPid)?.cpuPct ?? 0;
      const each = cpu.each.filter((e) => e.pid !== supervisorPid).map((e) => e.cpuPct);
      out.idle = {
        secs: +cpu.secs.toFixed(1),
        redis: redis.rate(r0, await redis.counters()),
        serverCpuPct: cpu.cpuPct,
        supervisorCpuPct,
        workerCpuPct: { mean: +(sum(each) / Math.max(1, each.length)).toFixed(2), max: Math.max(0, ...each), workers: each.length },
        genCpuPct: +((w1.cpuUs - w0.cpuUs) / 1e4 / cpu.secs).toFixed(1),
        // member-count frames the members got in the window (0: nothing moved)
        membersFrames: w1.membersFrames - w0.membersFrames,
      };
      // RSS again once the workers idled: connect-time garbage is collected and handed back by
      // then (200k: 2.35 KiB/member 5 s after connecting, 1.23 KiB 30 s after; bench/notes/storm.md).
      const rssIdle = totalRss(target.pids());
      out.serverRssAfterIdle = {
        secsAfterConnect: Math.round((Date.now() - connectedAt) / 1000),
        mib: +(rssIdle / 2 ** 20).toFixed(0),
        perMemberKiB: +((rssIdle - rssBefore) / 1024 / Math.max(1, conn.opened)).toFixed(2),
      };
      log(`${name}: idle Redis ${out.idle.redis.opsPerSec} ops/s, server CPU ${out.idle.serverCpuPct}% (supervisor ${supervisorCpuPct}%, per worker ${out.idle.workerCpuPct.mean}% mean, ${out.idle.workerCpuPct.max}% max), generators ${out.idle.genCpuPct}%; ${out.idle.membersFrames} member-count frames; server RSS ${out.serverRssAfterIdle.perMemberKiB} KiB/member ${out.serverRssAfterIdle.secsAfterConnect} s after connecting`);

      // single-batch reach probes, the set of members fixed (the connect phase is over)
      out.probes = [];
      for (let n = 0; n < f.probes; n++) {
        await waitQuiet(fleet, 1000, 30_000);
        const p = await probe(target, fleet, n);
        out.probes.push(p);
        const s = p.split ?? {};
        log(
          `${name}: probe ${n}: reached ${p.reached}/${p.open} in ${p.reachAllMs} ms = server ${s.serverMs} ms (post→append ${s.postToAppendMs}, append→written ${s.appendToWrittenMaxMs}; ` +
            `fan-out ${s.fanoutMaxMs} ms max, ${s.perWriteCpuUs} µs CPU / ${s.perWriteUs} µs per write, ${s.freshWorkers}/${s.workers} workers) + generator ${s.generatorMs} ms` +
            `${p.unavailable503 ? `; ${p.unavailable503} × 503` : ''}${p.postErrors ? `; ${p.postErrors} post errors` : ''}`,
        );
      }
      const perWrite = (k) => median(out.probes.map((p) => p.split?.[k]).filter((v) => v > 0)) ?? null;
      // One socket write, at this size: CPU (no waiting for a core; the per-step costs are
      // small beside ~17k writes per worker) and wall time, the medians of the probes.
      out.perWriteCpuUs = perWrite('perWriteCpuUs');
      out.perWriteUs = perWrite('perWriteUs');
      // members × one socket write: the CPU time it takes to hand a batch to every member
      for (const p of out.probes) p.writeBoundMs = out.perWriteCpuUs ? Math.round((p.open * out.perWriteCpuUs) / 1000) : null;

      // steady: a slow message rate, Redis ops/s and CPU
      await fleet.window(true);
      await sender.window(true);
      const rs1 = await redis.counters();
      const c1 = mark(target.pids());
      await sender.rate({ rate: f.steadyRate, rooms: [ROOM] });
      await sleep(f.steadyS * 1000);
      await sender.rate({ rate: 0, rooms: [ROOM] });
      const steadyCpu = diff(c1);
      const rs2 = await redis.counters();
      await sender.drain(30_000);
      await waitQuiet(fleet, 2000, reachTimeoutS * 1000);
      const w = await fleet.window(true);
      const sw = await sender.window(true);
      out.steady = {
        rate: f.steadyRate,
        redis: redis.rate(rs1, rs2),
        serverCpuPct: steadyCpu.cpuPct,
        frames: w.frames,
        frameLatencyMs: w.frameLat.summary(),
        posts: { sent: sw.sent, ok: sw.ok, status: sw.status, errors: sw.errors },
      };
      log(`${name}: steady ${f.steadyRate} msg/s: Redis ${out.steady.redis.opsPerSec} ops/s, server CPU ${out.steady.serverCpuPct}%, posts ${JSON.stringify(sw.status)}, frame latency ${JSON.stringify(out.steady.frameLatencyMs)}`);
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
    const m1 = await scrape(target);
    if (m0 && m1) {
      const busErrorsByOp = Object.fromEntries(Object.entries(m1.busErrorsByOp).map(([op, v]) => [op, v - (m0.busErrorsByOp[op] ?? 0)]));
      out.busErrors = { total: sum(Object.values(busErrorsByOp)), byOp: busErrorsByOp };
    }
    return out;
  }

  /** Redis command timeouts and errors the server logged (pino JSON lines, level ≥ 50). */
  function logCounts(file) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return null;
    }
    const lines = text.split('\n');
    return {
      redisTimeouts: lines.filter((l) => /timed out/i.test(l)).length,
      errors: lines.filter((l) => /"level":(50|60)/.test(l)).length,
    };
  }

  main(async () => {
    await needBuild();
    const { configSchema } = await import('../dist/src/config/schema.js');
    const idleTimeoutSec = f.idleTimeoutSec || configSchema.parse({}).idleTimeoutSec;
    // uWS pings a member silent for idleTimeoutSec - 16 s (its timers tick every 4 s)
    const idleS = f.idleS || idleTimeoutSec - 16;
    const gens = f.gens || Math.ceil(f.members / 18_000);
    const addrs = sourceAddrs(f.addrs || Math.max(2, Math.ceil(f.members / 16_000)));
    const perGen = Math.ceil(f.members / gens);
    const perWorker = Math.ceil(f.members / workers);
    log(`million: ${f.members} members, ${workers} workers (~${perWorker} each), ${gens} generators (${perGen} each), ${addrs.length} source addresses; connect phase ≤ ${connectTimeoutS} s, probe ≤ ${reachTimeoutS} s, idle timeout ${idleTimeoutSec} s, idle window ${idleS} s`);
    if (perWorker > 18_000) log(`WARNING: ~${perWorker} members per worker: SO_REUSEPORT spreads unevenly and a worker over ~19k hits the 20,000 open files; keep it ≤ ${MEMBERS_PER_WORKER}`);
    const checks = await checkLimits(
      { members: f.members, perProcess: Math.max(perGen, Math.ceil(perWorker * 1.1)), processes: workers + gens + 4, addrs: addrs.length },
      { strict: !f.skipChecks },
    );
    const redis = await launchRedis({ nice: f.redisNice });
    const target = await startTarget('roomcast', {
      workers,
      redisUrl: redis.url,
      redisAlways: true, // a supervisor and Redis at every size, so the sizes of a curve compare
      admin: true, // scrapes go to the supervisor, not through a worker busy with a fan-out
      args: ['--idle-timeout-sec', String(idleTimeoutSec), '--members-push-ms', String(MEMBERS_PUSH_MS), '--members-push-max-ms', String(MEMBERS_PUSH_MAX_MS)],
    });
    target.readyAt = Date.now();
    const sender = new Sender();
    await sender.start({ host: target.urls[0].host, port: target.urls[0].port, apiKey: target.apiKey, rooms: [ROOM], rate: 0, kinds: ['system'], priority: 'high' });
    const result = { workers, idleTimeoutSec, idleS, redisNice: redis.nice, timeouts: { connectS: connectTimeoutS, reachS: reachTimeoutS, stallS: f.stallS, askS: f.askTimeoutS }, checks };
    if (f.baselineMembers > 0) result.baseline = await phase('baseline', target, redis, sender, f.baselineMembers, 1, addrs.slice(0, 2), Math.min(20, idleS));
    result.full = await phase('full', target, redis, sender, f.members, gens, addrs, idleS);
    if (result.baseline?.steady && result.full.steady) {
      result.redisVsBaseline = {
        idle: +(result.full.idle.redis.opsPerSec / Math.max(1, result.baseline.idle.redis.opsPerSec)).toFixed(2),
        steady: +(result.full.steady.redis.opsPerSec / Math.max(1, result.baseline.steady.redis.opsPerSec)).toFixed(2),
      };
      log(`Redis ops/s full/baseline: idle ×${result.redisVsBaseline.idle}, steady ×${result.redisVsBaseline.steady}`);
    }
    await sender.stop();
    await target.stop();
    await sleep(500); // the log stream's last writes
    result.serverLog = logCounts(target.logFile);
    const x = result.full;
    result.clean = {
      allConnected: !!x.connect?.all,
      probes: (x.probes ?? []).filter((p) => p.complete).length,
      probesOk: (x.probes ?? []).length >= 3 && x.probes.every((p) => p.complete),
      steady: !!x.steady,
      // Every steady POST answered 202 in time, and every member still connected at the end:
      // a member the server dropped (its pong stuck behind frames it had not read) is not a gap.
      steadyAnswered: !!x.steady && x.steady.posts.ok === x.steady.posts.sent,
      stillOpen: x.tail ? x.tail.notOpen === 0 : false,
      zeroGaps: !!x.zeroGaps,
      redisTimeouts: result.serverLog?.redisTimeouts ?? null,
    };
    const c = result.clean;
    c.ok = c.allConnected && c.probesOk && c.steady && c.steadyAnswered && c.stillOpen && c.zeroGaps && c.redisTimeouts === 0;
    log(`clean run: ${JSON.stringify(result.clean)}`);
    const file = writeResult('million', { flags: f, command: commandLine('million'), result });
    log(`results: ${file}`);
  }, 8 * 3_600_000);
}
