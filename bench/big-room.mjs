#!/usr/bin/env node
// Scenario 1, big-room: one room, --members-per-worker members per worker (5k and 18k by
// default, one worker), API senders at rising rates; roomcast and each peer under the identical
// harness in the same run. The rate steps geometrically (×1.25 by default) until a step is not
// sustained and the next confirms it, so each side's ceiling is located within 25%; then the
// per-rate ratios roomcast ÷ raw uWS up to the lower ceiling, and server RSS per member
// (connected, idle, before traffic). --rss-only connects and measures RSS, with no traffic.
import { parseFlags, main, log, writeResult, needPackages, needBuild, PEER_PACKAGES, commandLine } from './lib/common.mjs';
import { addrsFor } from './lib/gen.mjs';
import { launchRedis } from './lib/redis.mjs';
import { runContender, ratios, summarize } from './lib/contender.mjs';
import { ceilingPlan } from './lib/ceiling.mjs';
import { mergeRuns, upperMedian } from './lib/repeats.mjs';
import { checkLimits } from './lib/limits.mjs';

const f = parseFlags(
  {
    membersPerWorker: { type: 'numbers', default: [5_000, 18_000], help: 'members per server worker; one sweep per size' },
    workers: { type: 'numbers', default: [1], help: 'worker counts to run' },
    targets: { type: 'list', default: ['roomcast', 'uws'], help: 'contenders: roomcast,uws,ws,sio' },
    rates: { type: 'numbers', default: [], help: 'fixed sender rates (msgs/s) instead of the ceiling search' },
    interleave: { type: 'boolean', default: false, help: 'with --rates: each rate on a fresh server per contender, the contenders taking turns rate by rate (the CPU per socket write drifts ~20 % between runs minutes apart)' },
    startDelivered: { type: 'number', default: 2_500_000, help: 'ceiling search: first step delivers this many msgs/s per worker (rate = it ÷ members per worker)' },
    startRate: { type: 'numbers', default: [], help: 'ceiling search: first rate per size (overrides --start-delivered)' },
    stepFactor: { type: 'number', default: 1.25, help: 'ceiling search: next rate = rate × this (≤ 1.25 locates the ceiling within 25%)' },
    maxRate: { type: 'number', default: 50_000, help: 'ceiling search: never offer more msgs/s than this' },
    maxSteps: { type: 'number', default: 16, help: 'ceiling search: steps per contender at most' },
    repeats: { type: 'number', default: 1, help: 'ceiling search and --rss-only: run each contender this many times, taking turns; each rate (and RSS) is the median of the runs (lib/repeats.mjs)' },
    minDelivered: { type: 'number', default: 0.95, help: 'sustained: delivered msgs/s ≥ this × rate × members (and posted ≥ this × rate)' },
    maxP99Ms: { type: 'number', default: 2000, help: 'sustained: p99 latency ≤ this' },
    stepS: { type: 'number', default: 15, help: 'measured seconds per rate' },
    warmupS: { type: 'number', default: 3, help: 'seconds at the rate before measuring' },
    firstWarmupS: { type: 'number', default: 10, help: 'warm-up before the first step of each contender (the first traffic after connecting)' },
    senderProcs: { type: 'number', default: 2, help: 'API sender processes (the rate is split over them)' },
    poster: { type: 'string', default: 'raw', help: 'senders\' HTTP client: raw (lean keep-alive client, lib/raw-http.mjs) or http (node:http)' },
    senderInflight: { type: 'number', default: 0, help: 'posts in flight at most, all senders (one keep-alive connection each; 0 = what fits beside the members under the open-file cap, ≤ 4096)' },
    rssSettleS: { type: 'number', default: 0, help: 'idle seconds before each server RSS reading (empty, then connected); 0 = 60 with --rss-only (a fresh worker sheds its start-up garbage over ~60 s), 5 otherwise' },
    rssOnly: { type: 'boolean', default: false, help: 'connect --members, read server RSS per member over the empty baseline, disconnect; no traffic' },
    members: { type: 'number', default: 200_000, help: '--rss-only: members in total (spread over --workers)' },
    gens: { type: 'number', default: 0, help: 'generator processes (0 = max(2, members/18000))' },
    client: { type: 'string', default: 'lite', help: 'member client: lite (bare RFC 6455 on net.Socket) or ws' },
    latencySample: { type: 'number', default: 8, help: 'per-message latency for every Nth member (frame latency: all)' },
    connectRate: { type: 'number', default: 4000, help: 'connects per second (all generators)' },
    bodyBytes: { type: 'number', default: 24, help: 'chat body size' },
    tickMs: { type: 'number', default: 50, help: 'tick for roomcast and the peers' },
    maxTickMs: { type: 'number', default: 0, help: 'roomcast --max-tick-ms (0 = its default)' },
    label: { type: 'string', default: '', help: 'free text stored with the results' },
  },
  undefined,
  'npm run bench:big-room -- [flags]\n  e.g. --members-per-worker 5000,18000 (ceiling search), or --rss-only --members 200000 --workers 12',
);

// A member socket, the listening socket, Redis and log files share the server's 20,000 open files.
const FD_CAP = 19_000;
// Posts in flight, each on its own keep-alive connection to the server: what fits beside the members.
const inflightFor = (mpw) => f.senderInflight || Math.max(64, Math.min(4096, FD_CAP - mpw));

const targetOpts = () => ({
  tickMs: f.tickMs,
  maxTickMs: f.maxTickMs || undefined,
  args: ['--room-chat-budget', '1000000', '--api-rate', '1000000'],
});

function common(members, workers, redis) {
  return {
    workers, redis, members, rooms: ['big'], gens: f.gens || Math.max(2, Math.ceil(members / 18_000)), addrs: addrsFor(members),
    stepS: f.stepS, warmupS: f.warmupS, firstWarmupS: f.firstWarmupS, client: f.client, latencySample: f.latencySample, connectRate: f.connectRate,
    senderConfig: { kinds: ['chat'], bodyBytes: f.bodyBytes, client: f.poster }, targetOpts: targetOpts(), rssSettleMs: (f.rssSettleS || (f.rssOnly ? 60 : 5)) * 1000, maxMs: 3_600_000,
  };
}

async function contender(kind, o) {
  log(`=== big-room: ${kind} ×${o.workers}, ${o.members} members, ${o.gens} generator processes`);
  try {
    return await runContender({ kind, ...o });
  } catch (err) {
    log(`${kind} ×${o.workers} failed: ${err.message}`);
    return { kind, workers: o.workers, members: o.members, error: String(err.message), steps: [] };
  }
}

const r2 = (v) => +v.toFixed(2);

/** RSS per member of roomcast beside raw uWS: growth over the empty baseline, and whole RSS. */
function rssRatio(rc, uws) {
  if (!rc || !uws || rc.error || uws.error) return null;
  return {
    roomcastKiB: rc.serverRssPerMemberKiB,
    uwsKiB: uws.serverRssPerMemberKiB,
    ratio: uws.serverRssPerMemberKiB > 0 ? r2(rc.serverRssPerMemberKiB / uws.serverRssPerMemberKiB) : null,
    roomcastMiB: rc.serverRssMiB,
    uwsMiB: uws.serverRssMiB,
    totalRatio: uws.serverRssMiB.after > 0 ? r2(rc.serverRssMiB.after / uws.serverRssMiB.after) : null,
  };
}

/** Each side's ceiling and, at every rate both measured up to the lower ceiling, roomcast ÷ raw uWS. */
function compare(members, workers, cs) {
  const rc = cs.find((c) => c.kind === 'roomcast' && !c.error);
  const uws = cs.find((c) => c.kind === 'uws' && !c.error);
  const out = {
    membersPerWorker: members / workers,
    workers,
    members,
    ceilings: cs.map((c) => ({ kind: c.kind, label: c.label ?? c.kind, ...(c.ceiling ?? {}), error: c.error })),
    rss: rssRatio(rc, uws),
    perRate: [],
  };
  if (!rc || !uws) return out;
  const lower = Math.min(rc.ceiling?.rate ?? 0, uws.ceiling?.rate ?? 0);
  out.lowerCeiling = lower || null;
  for (const a of rc.steps) {
    const b = uws.steps.find((s) => s.rate === a.rate);
    if (!b || a.rate > lower) continue;
    const delivered = b.deliveredMsgsPerSec ? r2(a.deliveredMsgsPerSec / b.deliveredMsgsPerSec) : null;
    const p99 = b.latencyMs.p99 ? r2(a.latencyMs.p99 / b.latencyMs.p99) : null;
    out.perRate.push({
      rate: a.rate,
      roomcast: { delivered: a.deliveredMsgsPerSec, p99: a.latencyMs.p99, ok: a.ok },
      uws: { delivered: b.deliveredMsgsPerSec, p99: b.latencyMs.p99, ok: b.ok },
      delivered,
      p99,
      meets: delivered !== null && p99 !== null && delivered >= 0.95 && p99 <= 1.15,
    });
  }
  out.allMeet = out.perRate.length > 0 && out.perRate.every((p) => p.meets);
  return out;
}

async function sweep() {
  const maxMpw = Math.max(...f.membersPerWorker);
  await checkLimits({ members: maxMpw * Math.max(...f.workers), perProcess: Math.min(FD_CAP, maxMpw + inflightFor(maxMpw)), processes: 8 }, { strict: false });
  const redis = f.workers.some((w) => w > 1) || f.targets.includes('sio') ? await launchRedis() : null;
  const contenders = [];
  const comparisons = [];
  /** With --repeats: every run as measured, before the merge. */
  const repeatRuns = [];
  for (const [i, mpw] of f.membersPerWorker.entries()) {
    for (const workers of f.workers) {
      const members = mpw * workers;
      const start = f.startRate[i] ?? Math.max(20, Math.round(f.startDelivered / mpw));
      const plan = () => {
        const p = ceilingPlan({ start, factor: f.stepFactor, minDelivered: f.minDelivered, maxP99Ms: f.maxP99Ms, maxRate: f.maxRate, maxSteps: f.maxSteps });
        // fixed rates: every one is measured and judged the same way
        return f.rates.length ? { ...p, next: (steps, stoppedAt) => (stoppedAt ? null : f.rates[steps.length] ?? null) } : p;
      };
      const o = () => ({ ...common(members, workers, redis), plan: plan(), senderProcs: f.senderProcs, senderInflight: inflightFor(mpw) });
      const cs = f.interleave ? await interleaved(o, plan) : f.repeats > 1 ? await repeated(o, plan, repeatRuns) : [];
      if (!f.interleave && f.repeats <= 1) for (const kind of f.targets) cs.push(await contender(kind, o()));
      contenders.push(...cs);
      const cmp = compare(members, workers, cs);
      comparisons.push(cmp);
      for (const c of cmp.ceilings) log(`${c.label} ×${workers}, ${members} members: ceiling ${c.error ? `failed: ${c.error}` : describeCeiling(c)}`);
      for (const p of cmp.perRate) log(`  rate ${p.rate}: delivered ×${p.delivered}, p99 ×${p.p99} (roomcast ÷ raw uWS)${p.meets ? '' : '  [OFF TARGET]'}`);
      if (cmp.rss) log(`  server RSS/member: roomcast ${cmp.rss.roomcastKiB} KiB, raw uWS ${cmp.rss.uwsKiB} KiB (×${cmp.rss.ratio}); whole RSS ${cmp.rss.roomcastMiB.after} vs ${cmp.rss.uwsMiB.after} MiB`);
    }
  }
  const file = writeResult('big-room', {
    flags: f,
    command: commandLine('big-room'),
    contenders,
    comparisons,
    ...(f.repeats > 1 ? { repeatRuns } : {}),
    ratios: ratios(contenders.filter((c) => !c.error)),
  });
  log(`results: ${file}`);
}

/**
 * The contenders take turns rate by rate, each rate on a fresh server and fleet: what drifts
 * over minutes (the box's CPU per socket write) then falls on both sides of every ratio.
 * Each contender's rows are merged into one result, as if run in one go.
 */
async function interleaved(o, plan) {
  const byKind = new Map();
  for (const rate of f.rates) {
    for (const kind of f.targets) {
      const merged = byKind.get(kind);
      if (merged?.error || merged?.stoppedAt) continue;
      const run = await contender(kind, { ...o(), plan: { next: (steps, stoppedAt) => (steps.length || stoppedAt ? null : rate), judge: plan().judge } });
      if (!merged) byKind.set(kind, run);
      else if (run.error) merged.error = run.error;
      else {
        merged.steps.push(...run.steps);
        merged.stoppedAt = run.stoppedAt;
      }
    }
  }
  return [...byKind.values()].map((c) => (c.error ? c : summarize(c, plan())));
}

/**
 * Each contender's whole search, --repeats times, the contenders taking turns (what drifts
 * over minutes falls on both sides); each contender's runs merged rate by rate (medians).
 */
async function repeated(o, plan, keep) {
  const runs = new Map(f.targets.map((kind) => [kind, []]));
  for (let i = 0; i < f.repeats; i++) {
    for (const kind of f.targets) {
      log(`--- repeat ${i + 1} of ${f.repeats}`);
      const run = await contender(kind, o());
      keep.push({ ...run, repeat: i + 1 });
      if (!run.error) runs.get(kind).push(run);
      log(`${kind} run ${i + 1}: ceiling ${describeCeiling(run.ceiling ?? {})}`);
    }
  }
  return f.targets.map((kind) => {
    const ok = runs.get(kind);
    if (!ok.length) return { kind, workers: o().workers, members: o().members, error: 'every run failed', steps: [] };
    return summarize(mergeRuns(ok), plan());
  });
}

function describeCeiling(c) {
  if (c.rate === null || c.rate === undefined) return `none: no rate sustained${c.firstFailAbove ? ` down to ${c.firstFailAbove}/s` : ''}`;
  const where = c.located ? `; ${c.firstFailAbove}/s not sustained (+${c.withinPct}%)` : '; not located (no failing rate above it)';
  return `${c.rate} msgs/s in, ${c.deliveredMsgsPerSec?.toLocaleString()} msgs/s delivered, p99 ${c.p99} ms${where}${c.holes?.length ? `; unsustained below it: ${c.holes.join(', ')}` : ''}`;
}

async function rssOnly() {
  const redis = f.workers.some((w) => w > 1) ? await launchRedis() : null;
  const runs = [];
  const medians = [];
  for (const workers of f.workers) {
    const perWorker = Math.ceil(f.members / workers);
    if (perWorker > FD_CAP - 500) throw new Error(`${perWorker} members per worker is over the open-file cap; use more --workers`);
    const o = { ...common(f.members, workers, redis), rates: [] };
    await checkLimits({ members: f.members, perProcess: perWorker, processes: workers + o.gens }, { strict: false });
    const ratios = [];
    for (let i = 0; i < f.repeats; i++) {
      const cs = [];
      for (const kind of f.targets) cs.push(await contender(kind, o));
      const rss = rssRatio(cs.find((c) => c.kind === 'roomcast' && !c.error), cs.find((c) => c.kind === 'uws' && !c.error));
      if (rss?.ratio) ratios.push(rss);
      runs.push({
        workers,
        members: f.members,
        ...(f.repeats > 1 ? { repeat: i + 1 } : {}),
        contenders: cs.map((c) => ({ kind: c.kind, label: c.label ?? c.kind, error: c.error, connect: c.connect, serverRssMiB: c.serverRssMiB, serverRssEachMiB: c.serverRssEachMiB, serverRssPerMemberKiB: c.serverRssPerMemberKiB, serverRssTotalPerMemberKiB: c.serverRssTotalPerMemberKiB })),
        rss,
      });
      for (const c of cs) log(`${c.label ?? c.kind} ×${workers}, ${c.connect?.opened ?? 0} members: server RSS ${c.error ? `failed: ${c.error}` : `${c.serverRssMiB.before} → ${c.serverRssMiB.after} MiB, ${c.serverRssPerMemberKiB} KiB/member over the empty baseline; per process ${c.serverRssEachMiB?.before.join('/')} → ${c.serverRssEachMiB?.after.join('/')} MiB`}`);
      if (rss?.ratio) log(`  roomcast ÷ raw uWS RSS/member: ×${rss.ratio}`);
    }
    if (ratios.length > 1) {
      // each side's median over the runs, and the median of the runs' ratios
      const median = { roomcastKiB: upperMedian(ratios.map((r) => r.roomcastKiB)), uwsKiB: upperMedian(ratios.map((r) => r.uwsKiB)), ratio: upperMedian(ratios.map((r) => r.ratio)), runs: ratios.length };
      medians.push({ workers, members: f.members, ...median });
      log(`  median of ${ratios.length} runs: roomcast ${median.roomcastKiB} KiB, raw uWS ${median.uwsKiB} KiB per member; ratio ×${median.ratio}`);
    }
  }
  const file = writeResult('big-room-rss', { flags: f, command: commandLine('big-room'), runs, ...(medians.length ? { medians } : {}) });
  log(`results: ${file}`);
}

main(async () => {
  await needBuild();
  await needPackages(f.targets.flatMap((t) => PEER_PACKAGES[t] ?? []), `big-room with ${f.targets.join(',')}`);
  if (!['raw', 'http'].includes(f.poster)) throw new Error('--poster must be raw or http');
  if (f.stepFactor <= 1) throw new Error('--step-factor must be over 1');
  if (f.interleave && !f.rates.length) throw new Error('--interleave needs --rates');
  if (f.repeats > 1 && (f.interleave || f.rates.length)) throw new Error('--repeats is for the ceiling search and --rss-only (fixed --rates: use --interleave)');
  if (f.stepFactor > 1.25) log(`note: --step-factor ${f.stepFactor} locates the ceiling only within ${Math.round((f.stepFactor - 1) * 100)}%`);
  await (f.rssOnly ? rssOnly() : sweep());
}, 4 * 3_600_000);
