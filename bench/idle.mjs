#!/usr/bin/env node
// Idle cost: --members real WebSocket members in one room over --workers roomcast workers on
// Redis, then nothing at all for --idleS seconds. Measures each server process's CPU (% of one
// core, and µs of CPU per member per second), Redis commands/s and the ticks run while idle,
// then checks that a message sent after the idle window still reaches every member. Then the
// same members idle on a bare uWS server (bench/peers/uws-peer.mjs, same idle timeout) for the
// same window: the box's own floor for that many idle sockets, and the ratio against it.
import { parseFlags, main, log, writeResult, sleep, needBuild, commandLine } from './lib/common.mjs';
import { Fleet, sourceAddrs } from './lib/gen.mjs';
import { launchRedis } from './lib/redis.mjs';
import { startTarget, http, promSum } from './lib/targets.mjs';
import { mark, diff } from './lib/proc.mjs';
import { waitQuiet } from './lib/steps.mjs';
import { checkLimits } from './lib/limits.mjs';

const f = parseFlags(
  {
    members: { type: 'number', default: 17_000, help: 'members in the room (≤ ~18k per worker)' },
    workers: { type: 'number', default: 1, help: 'roomcast workers' },
    idleS: { type: 'number', default: 0, help: 'idle measurement window, seconds (0 = max(60, idleTimeoutSec): one keep-alive ping per member falls in it)' },
    settleS: { type: 'number', default: 10, help: 'wait after the connect phase before measuring' },
    idleTimeoutSec: { type: 'number', default: 0, help: '--idle-timeout-sec of the server (0 = its default); uWS pings a silent member every idleTimeoutSec - 16 s (from 32 s up)' },
    sdkPingS: { type: 'number', default: 0, help: 'every member sends a `ping` op this often, as the SDK does in a silent room (0 = none; the SDK uses min(30, hb/2) s)' },
    baseline: { type: 'boolean', default: true, help: 'then the same members idle on raw uWS for the same window (not with --sdk-ping-s: the peer does not answer pings)' },
    profile: { type: 'boolean', default: false, help: 'run the workers with --cpu-prof (profiles in bench/results/prof-<ts>/)' },
    label: { type: 'string', default: '', help: 'free text stored with the results' },
  },
  undefined,
  'npm run bench:idle -- [flags]',
);

const ROOM = 'idle';
/** The server's default idle timeout, read from the built config (the bench runs dist/). */
const { configSchema } = await import('../dist/src/config/schema.js');
const idleTimeoutSec = f.idleTimeoutSec || configSchema.parse({}).idleTimeoutSec;
const idleS = f.idleS || Math.max(60, idleTimeoutSec);

main(async () => {
  await needBuild();
  const gens = Math.max(1, Math.ceil(f.members / 18_000));
  const addrs = sourceAddrs(Math.max(2, Math.ceil(f.members / 16_000)));
  const perWorker = Math.ceil(f.members / f.workers);
  log(`idle: ${f.members} members, ${f.workers} workers (~${perWorker} each), ${gens} generators, idle timeout ${idleTimeoutSec} s, idle window ${idleS} s`);
  const checks = await checkLimits({ members: f.members, perProcess: Math.max(Math.ceil(f.members / gens), Math.ceil(perWorker * 1.1)), processes: f.workers + gens + 3, addrs: addrs.length });
  const profDir = new URL(`./results/prof-${new Date().toISOString().replace(/[:.]/g, '-')}/`, import.meta.url).pathname;
  if (f.profile) log(`cpu profiles: ${profDir}`);
  const redis = await launchRedis();
  const target = await startTarget('roomcast', {
    workers: f.workers,
    redisUrl: redis.url,
    redisAlways: true,
    admin: true, // scrapes go to the supervisor, not through a worker
    nodeArgs: f.profile ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [],
    args: ['--idle-timeout-sec', String(idleTimeoutSec)],
  });
  const fleet = new Fleet({
    procs: gens, members: f.members, proto: 'roomcast', client: 'lite', urls: target.urls, rooms: [ROOM], addrs,
    secret: target.secret, uidPrefix: 'idle-', tokenTtlSec: 7200, latencySample: 0, connectRate: 5000,
    maxPending: Math.min(2000, 256 * f.workers), connectTimeoutMs: 30_000, retries: 3, maxMs: 1_800_000,
  });
  const result = { workers: f.workers, members: f.members, idleTimeoutSec, idleS, checks };
  try {
    await fleet.start();
    const conn = await fleet.waitConnected({ timeoutMs: 300_000 });
    result.connected = conn.opened;
    await sleep(f.settleS * 1000);
    if (f.sdkPingS > 0) {
      // heartbeats start spread evenly: one whole interval passes before the window opens
      await fleet.heartbeats(f.sdkPingS * 1000);
      await sleep(f.sdkPingS * 1000);
    }
    const ticks = async () => promSum(await target.metrics(), 'roomcast_tick_duration_seconds_count') ?? 0;
    const workerPids = target.workerPids();
    await fleet.window(true);
    const t0 = await ticks();
    const r0 = await redis.counters();
    const c0 = mark(target.pids());
    const g0 = mark(fleet.pids());
    await sleep(idleS * 1000);
    const cpu = diff(c0);
    const gen = diff(g0);
    const heard = await fleet.window(true);
    const r1 = await redis.counters();
    const t1 = await ticks();
    const perMember = f.members / f.workers;
    const workers = cpu.each.filter((e) => workerPids.includes(e.pid));
    const supervisor = cpu.each.find((e) => !workerPids.includes(e.pid));
    const meanPct = workers.reduce((s, e) => s + e.cpuPct, 0) / Math.max(1, workers.length);
    result.idle = {
      secs: +cpu.secs.toFixed(1),
      serverCpuPct: cpu.cpuPct,
      workerCpuPct: workers.map((e) => e.cpuPct),
      workerCpuPctMean: +meanPct.toFixed(2),
      supervisorCpuPct: supervisor?.cpuPct ?? null,
      // CPU µs per member per second: (% of a core / 100) × 1e6 µs / members in that worker
      usPerMemberPerSec: +((meanPct / 100) * 1e6 / perMember).toFixed(3),
      generatorCpuPct: gen.cpuPct,
      sdkPings: { sent: heard.sent.ping, pongs: heard.pongs },
      redis: redis.rate(r0, r1),
      ticksPerSec: +((t1 - t0) / cpu.secs).toFixed(2),
      workerRssMiB: workers.map((e) => e.rssMiB),
    };
    log(`idle: worker CPU ${result.idle.workerCpuPct.join(', ')} % of a core (mean ${result.idle.workerCpuPctMean} %), ${result.idle.usPerMemberPerSec} µs per member per second; supervisor ${result.idle.supervisorCpuPct} %`);
    if (f.sdkPingS > 0) log(`idle: SDK heartbeats ${heard.sent.ping} pings, ${heard.pongs} pongs`);
    log(`idle: Redis ${result.idle.redis.opsPerSec} commands/s ${JSON.stringify(result.idle.redis.perCommand)}; ${result.idle.ticksPerSec} ticks/s; generators ${gen.cpuPct} %`);

    // after the idle window: one message must still reach every member
    await fleet.heartbeats(0);
    await fleet.expect(await target.finalSeqs([ROOM]));
    await fleet.window(true);
    const t = Date.now();
    const r = await http('POST', `${target.apiBase}/v1/rooms/${ROOM}/messages`, {
      headers: { Authorization: `Bearer ${target.apiKey}` },
      body: { kind: 'system', body: 'after idle' },
    });
    if (r.status !== 202) throw new Error(`post after idle: ${r.status} ${r.text}`);
    await waitQuiet(fleet, 1000, 30_000);
    const w = await fleet.window(true);
    result.afterIdle = { frames: w.frames, reachAllMs: w.lastFrameAt ? w.lastFrameAt - t : null, tail: await fleet.expect(await target.finalSeqs([ROOM])) };
    log(`after idle: ${w.frames} frames, all reached in ${result.afterIdle.reachAllMs} ms, missed ${result.afterIdle.tail.totalMissed}`);
  } finally {
    await fleet.stop();
    await target.stop();
  }
  if (f.baseline && f.sdkPingS === 0) {
    result.baseline = await rawUwsIdle(addrs, gens);
    result.ratio = +(result.idle.workerCpuPctMean / Math.max(0.01, result.baseline.serverCpuPct)).toFixed(2);
    log(`raw uWS: ${result.baseline.serverCpuPct} % of a core, ${result.baseline.usPerMemberPerSec} µs per member per second; roomcast's worker ×${result.ratio}`);
  }
  const file = writeResult('idle', { flags: f, command: commandLine('idle'), result });
  log(`results: ${file}`);
}, 20 * 60_000);

/** The same members, settle and window on one raw uWS process (no Redis, no ticks, no API). */
async function rawUwsIdle(addrs, gens) {
  const target = await startTarget('uws', { workers: 1, peerArgs: ['--idle-timeout-sec', String(idleTimeoutSec)] });
  const fleet = new Fleet({
    procs: gens, members: f.members, proto: target.proto, client: 'lite', urls: target.urls, rooms: [ROOM], addrs,
    uidPrefix: 'idle-', tokenTtlSec: 7200, latencySample: 0, connectRate: 5000,
    maxPending: 2000, connectTimeoutMs: 30_000, retries: 3, maxMs: 1_800_000,
  });
  try {
    await fleet.start();
    const conn = await fleet.waitConnected({ timeoutMs: 300_000 });
    await sleep(f.settleS * 1000);
    await fleet.window(true);
    const c0 = mark(target.pids());
    await sleep(idleS * 1000);
    const cpu = diff(c0);
    return {
      kind: 'uws',
      connected: conn.opened,
      secs: +cpu.secs.toFixed(1),
      serverCpuPct: cpu.cpuPct,
      usPerMemberPerSec: +((cpu.cpuPct / 100) * 1e6 / f.members).toFixed(3),
      rssMiB: cpu.each.map((e) => e.rssMiB),
    };
  } finally {
    await fleet.stop();
    await target.stop();
  }
}
