// Runs one contender (roomcast or a peer, N workers) through a list of send rates with the
// same generator fleet and sender: connect, baseline, a measured step per rate, teardown.
import { log, sleep } from './common.mjs';
import { Fleet } from './gen.mjs';
import { Sender } from './sender.mjs';
import { startTarget } from './targets.mjs';
import { rssMiBEach, totalRss } from './proc.mjs';
import { baseline, measureStep, describeRow } from './steps.mjs';
import { fixedPlan } from './ceiling.mjs';

/**
 * o: { kind, workers, redis, members, rooms, gens, addrs, rates, stepS, warmupS, client,
 *      latencySample, connectRate, maxPending, targetOpts, maxP99Ms, stopOnFail, senderConfig,
 *      connectTimeoutMs, maxMs, plan (a rate plan from ceiling.mjs; default: o.rates as given),
 *      senderProcs, senderInflight (total posts in flight), rssSettleMs, firstWarmupS }
 * Server RSS is read twice, each after rssSettleMs of idle: with the workers up and no
 * members (the empty baseline), and with every member connected, before any traffic.
 */
export async function runContender(o) {
  if (o.redis) await o.redis.flush();
  if (o.roomcastRedis && o.roomcastRedis !== o.redis) await o.roomcastRedis.flush();
  // roomcast may run on its own Redis (a Cluster) while the peers keep theirs.
  const rr = o.kind === 'roomcast' && o.roomcastRedis ? o.roomcastRedis : o.redis;
  const target = await startTarget(o.kind, { ...(o.targetOpts ?? {}), workers: o.workers, redisUrl: rr?.url, redisCluster: rr?.seeds });
  const out = { kind: o.kind, label: target.label, workers: o.workers, members: o.members, rooms: o.rooms.length, steps: [] };
  let fleet;
  let sender;
  try {
    await sleep(o.rssSettleMs ?? 500);
    const rssBefore = totalRss(target.pids());
    const eachBefore = rssMiBEach(target.pids());
    fleet = new Fleet({
      procs: o.gens,
      members: o.members,
      proto: target.proto,
      client: o.client ?? 'lite',
      urls: target.urls,
      rooms: o.rooms,
      addrs: o.addrs,
      secret: target.secret,
      uidPrefix: 'm',
      tokenTtlSec: 7200,
      latencySample: o.latencySample ?? 8,
      needLikes: false,
      connectRate: o.connectRate ?? 4000,
      maxPending: o.maxPending ?? 1000,
      connectTimeoutMs: o.connectTimeoutMs ?? 30_000,
      maxMs: o.maxMs,
    });
    await fleet.start();
    const conn = await fleet.waitConnected({ label: `${target.label} ×${o.workers}: `, needJoined: target.proto !== 'sio' });
    out.connect = { opened: conn.opened, failed: conn.failed, closed: conn.closed, closes: conn.closes, lostSamples: conn.lostSamples, secs: +conn.secs.toFixed(1), perSec: Math.round(conn.perSec), failReasons: conn.failReasons };
    await sleep(o.rssSettleMs ?? 1000);
    const rssAfter = totalRss(target.pids());
    const gen = await fleet.window(false);
    out.serverRssMiB = { before: +(rssBefore / 2 ** 20).toFixed(1), after: +(rssAfter / 2 ** 20).toFixed(1) };
    // per process (a roomcast supervisor first, then its workers), empty and connected
    out.serverRssEachMiB = { before: eachBefore, after: rssMiBEach(target.pids()) };
    // growth over the empty baseline, and the whole RSS, per connected member
    out.serverRssPerMemberKiB = +((rssAfter - rssBefore) / 1024 / Math.max(1, conn.opened)).toFixed(2);
    out.serverRssTotalPerMemberKiB = +(rssAfter / 1024 / Math.max(1, conn.opened)).toFixed(2);
    // generator memory per member: growth over the processes' own baseline (~50 MiB each)
    out.genRssMiB = { start: +(conn.rssStart / 2 ** 20).toFixed(1), connected: +(gen.rss / 2 ** 20).toFixed(1) };
    out.genRssPerMemberKiB = +((gen.rss - conn.rssStart) / 1024 / Math.max(1, conn.opened)).toFixed(2);
    if (conn.opened < o.members) log(`WARNING: only ${conn.opened}/${o.members} members connected (failed: ${JSON.stringify(conn.failReasons)}, closed: ${JSON.stringify(conn.closes)})`);
    sender = new Sender({ procs: o.senderProcs ?? 1 });
    const api = target.urls[0];
    await sender.start({
      host: api.host, port: api.port, apiKey: target.apiKey, rooms: o.rooms, rate: 0, maxMs: o.maxMs,
      ...(o.senderInflight ? { maxInflight: o.senderInflight } : {}), ...(o.senderConfig ?? {}),
    });
    out.baseline = await baseline(target, fleet, o.rooms);
    if (o.beforeSteps && o.kind === 'roomcast') out.idle = await o.beforeSteps(target);
    const plan = o.plan ?? fixedPlan({ rates: o.rates, stopOnFail: o.stopOnFail, maxP99Ms: o.maxP99Ms });
    for (let rate = plan.next(out.steps); rate !== null; rate = plan.next(out.steps, out.stoppedAt)) {
      let row;
      try {
        row = await measureStep({
          target, fleet, sender, redis: o.workers > 1 || o.kind === 'sio' ? rr : o.redisForSingle ?? null,
          rooms: o.rooms, rate, seconds: o.stepS, memberCount: o.members,
          // the first traffic after connecting also warms the server's JIT and buffers
          warmupS: out.steps.length === 0 && o.firstWarmupS ? o.firstWarmupS : o.warmupS,
          label: `${target.label} ×${o.workers}`, senderConfig: o.senderConfig,
          quietMs: o.quietMs, drainMaxMs: o.drainMaxMs,
        });
      } catch (err) {
        // A contender that cannot finish a step (e.g. too busy working off a backlog to answer
        // the tail check) keeps the rates it sustained; the report says where it stopped.
        out.stoppedAt = { rate, error: String(err.message) };
        log(`  ${target.label} ×${o.workers} stopped at rate ${rate}: ${err.message}`);
        break;
      }
      row.serverRssPerMemberKiB = out.serverRssPerMemberKiB;
      plan.judge(row);
      out.steps.push(row);
      log(describeRow(row));
      if (!row.ok) log(`  ${target.label} ×${o.workers} rate ${rate}: not sustained: ${row.note ?? 'misses'}`);
    }
    summarize(out, plan);
  } finally {
    await sender?.stop();
    await fleet?.stop();
    await target.stop();
  }
  return out;
}

/** The ceiling (when the plan has one) and the sustained step of a contender's steps. */
export function summarize(out, plan) {
  if (plan.summary) out.ceiling = plan.summary(out.steps, out.stoppedAt);
  const good = out.steps.filter((r) => r.ok);
  // a located ceiling is the sustained step; otherwise the most delivered
  const best = out.ceiling
    ? good.find((r) => r.rate === out.ceiling.rate) ?? null
    : good.reduce((b, r) => (!b || r.deliveredMsgsPerSec > b.deliveredMsgsPerSec ? r : b), null);
  out.sustained = best
    ? { rate: best.rate, deliveredMsgsPerSec: best.deliveredMsgsPerSec, framesPerSec: best.framesPerSec, p50: best.latencyMs.p50, p99: best.latencyMs.p99, max: best.latencyMs.max, serverCpuPct: best.serverCpuPct }
    : null;
  return out;
}

/** roomcast/peer ratios for the same worker count, on sustained msgs/s and per shared rate. */
export function ratios(contenders) {
  const out = [];
  for (const rc of contenders.filter((c) => c.kind === 'roomcast')) {
    for (const peer of contenders.filter((c) => c.kind !== 'roomcast' && c.workers === rc.workers && c.members === rc.members)) {
      const perRate = [];
      for (const a of rc.steps) {
        const b = peer.steps.find((s) => s.rate === a.rate);
        if (!b) continue;
        perRate.push({
          rate: a.rate,
          deliveredMsgs: b.deliveredMsgsPerSec ? +(a.deliveredMsgsPerSec / b.deliveredMsgsPerSec).toFixed(2) : null,
          frames: b.framesPerSec ? +(a.framesPerSec / b.framesPerSec).toFixed(2) : null,
          p99: b.latencyMs.p99 ? +(a.latencyMs.p99 / b.latencyMs.p99).toFixed(2) : null,
          serverCpu: b.serverCpuPct ? +(a.serverCpuPct / b.serverCpuPct).toFixed(2) : null,
          bothOk: a.ok && b.ok,
        });
      }
      out.push({
        workers: rc.workers,
        roomcastLabel: rc.label,
        peer: peer.kind,
        peerLabel: peer.label,
        sustainedMsgs: rc.sustained && peer.sustained ? +(rc.sustained.deliveredMsgsPerSec / peer.sustained.deliveredMsgsPerSec).toFixed(2) : null,
        serverRssPerMember: peer.serverRssPerMemberKiB ? +(rc.serverRssPerMemberKiB / peer.serverRssPerMemberKiB).toFixed(2) : null,
        connectPerSec: peer.connect?.perSec ? +(rc.connect.perSec / peer.connect.perSec).toFixed(2) : null,
        perRate,
      });
    }
  }
  return out;
}
