// One measured step of a scenario: traffic at a rate for a window, then the tail check (every
// member's last seq equals its room's final seq), with server CPU/RSS, Redis ops and the
// engine's own metrics around it.
import { log, sleep } from './common.mjs';
import { mark, diff, totalRss } from './proc.mjs';
import { promSum, promValues, promBuckets } from './targets.mjs';

/** Waits until no member received a frame for quietMs (bounded by maxMs). */
export async function waitQuiet(fleet, quietMs, maxMs) {
  const t0 = Date.now();
  let lastFrames = -1;
  let since = Date.now();
  while (Date.now() - t0 < maxMs) {
    const w = await fleet.window(false);
    if (w.frames !== lastFrames) {
      lastFrames = w.frames;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return true;
    await sleep(Math.min(250, quietMs / 2));
  }
  return false;
}

/** Sets every member's baseline to its room's current seq (before traffic). */
export async function baseline(target, fleet, rooms) {
  const seqs = await target.finalSeqs(rooms);
  return fleet.expect(seqs);
}

export async function metricsSnapshot(target) {
  if (target.kind !== 'roomcast') return null;
  try {
    const text = await target.metrics();
    return {
      drops: promSum(text, 'roomcast_backpressure_drops_total') ?? 0,
      deliveries: promSum(text, 'roomcast_deliveries_total') ?? 0,
      replyWrites: promSum(text, 'roomcast_reply_writes_total') ?? 0,
      batches: promSum(text, 'roomcast_batches_published_total') ?? 0,
      effectiveTickMs: promValues(text, 'roomcast_effective_tick_seconds').map((v) => Math.round(v * 1000)),
      tickCount: promSum(text, 'roomcast_tick_duration_seconds_count') ?? 0,
      tickSum: promSum(text, 'roomcast_tick_duration_seconds_sum') ?? 0,
      deliveryLatency: promBuckets(text, 'roomcast_delivery_latency_seconds'),
      busAppend: promBuckets(text, 'roomcast_bus_append_seconds'),
      busReadLag: promBuckets(text, 'roomcast_bus_read_lag_seconds'),
      tickDuration: promBuckets(text, 'roomcast_tick_duration_seconds'),
      shed: {
        chat: promSum(text, 'roomcast_shed_total', /kind="chat"/) ?? 0,
        like: promSum(text, 'roomcast_shed_total', /kind="like"/) ?? 0,
      },
      received: {
        accepted: promSum(text, 'roomcast_messages_received_total', /result="accepted"/) ?? 0,
        sampledOut: promSum(text, 'roomcast_messages_received_total', /result="sampled_out"/) ?? 0,
        rateLimited: promSum(text, 'roomcast_messages_received_total', /result="rate_limited"/) ?? 0,
      },
    };
  } catch (err) {
    log(`metrics unavailable: ${err.message}`);
    return null;
  }
}

/**
 * o: { target, fleet, sender, redis, rooms, rate, seconds, warmupS, quietMs, drainMaxMs,
 *      senderConfig (extra), extraPids: {gens, sender}, memberCount, label }
 * Returns one result row.
 */
export async function measureStep(o) {
  const { target, fleet, sender, redis, rooms } = o;
  await sender.rate({ rate: o.rate, rooms, ...(o.senderConfig ?? {}) });
  await sleep((o.warmupS ?? 3) * 1000);
  const serverPids = target.pids();
  const genPids = fleet.pids();
  // slow snapshots first (metrics go through the supervisor), then the window starts
  const m0 = await metricsSnapshot(target);
  const mAt0 = performance.now();
  const r0 = redis ? await redis.counters() : null;
  await fleet.window(true);
  await sender.window(true);
  const redisPids = redis ? redis.pids : [];
  const cpu0 = mark([...serverPids, ...genPids, ...sender.pids, ...redisPids]);
  const t0 = performance.now();
  const end = Date.now() + o.seconds * 1000;
  while (Date.now() < end) {
    await sleep(Math.min(5000, end - Date.now()));
    if (Date.now() < end - 500) {
      const w = await fleet.window(false);
      const s = (performance.now() - t0) / 1000;
      log(`  ${o.label ?? ''} rate ${o.rate}/s: ${Math.round(w.frames / s)} frames/s, ${Math.round(w.msgs / s)} msgs/s delivered, missed ${w.missed}, frame p99 ${w.frameLat.pct(99)} ms`);
    }
  }
  const cpu = diff(cpu0);
  const w = await fleet.window(true);
  const snd = await sender.window(true);
  const secs = (performance.now() - t0) / 1000;
  // Rates over each side's own window: the end snapshots reach the generators and the senders
  // at slightly different moments, which on a loaded box is a few % of a short step.
  const genSecs = w.windowMs ? w.windowMs / 1000 / genPids.length : secs;
  const sendSecs = snd.windowMs ? snd.windowMs / 1000 : secs;
  const r1 = redis ? await redis.counters() : null;
  const m1 = await metricsSnapshot(target);
  const mSecs = (performance.now() - mAt0) / 1000;
  const serverSet = new Set(serverPids);
  const genSet = new Set(genPids);
  const pick = (set) => cpu.each.filter((e) => set.has(e.pid));
  const serverCpu = pick(serverSet).reduce((a, e) => a + e.cpuPct, 0);
  const genCpu = pick(genSet).reduce((a, e) => a + e.cpuPct, 0);
  const redisCpu = pick(new Set(redisPids)).reduce((a, e) => a + e.cpuPct, 0);
  const senderCpu = pick(new Set(sender.pids)).reduce((a, e) => a + e.cpuPct, 0);
  const serverRss = totalRss(serverPids);

  // stop sending, let the last batches land, then the tail check
  await sender.rate({ rate: 0, rooms });
  await sender.drain(15_000);
  const quiet = await waitQuiet(fleet, o.quietMs ?? 1500, o.drainMaxMs ?? 30_000);
  const tail = await fleet.expect(await target.finalSeqs(rooms));
  const members = o.memberCount;
  const row = {
    target: target.kind,
    label: target.label,
    workers: target.workers,
    members,
    open: w.opened,
    rate: o.rate,
    secs: +secs.toFixed(1),
    sentPerSec: +(snd.sent / sendSecs).toFixed(1),
    postedOk: snd.ok,
    postStatus: snd.status,
    postBehind: snd.behind,
    postRtt: snd.rtt,
    deliveredMsgsPerSec: Math.round(w.msgs / genSecs),
    framesPerSec: Math.round(w.frames / genSecs),
    bytesPerSec: Math.round(w.bytes / genSecs),
    framesPerMemberPerSec: +(w.frames / genSecs / Math.max(1, w.opened)).toFixed(2),
    msgsPerFrame: w.frames ? +(w.msgs / w.frames).toFixed(2) : 0,
    missedInWindow: w.missed,
    gapEvents: w.gapEvents,
    dups: w.dups,
    tailBehindMembers: tail.behind,
    tailBehindSeqs: tail.behindSeqs,
    membersWithMisses: tail.withMisses,
    maxMissedPerMember: tail.maxMissed,
    totalMissed: tail.totalMissed,
    stepMissed: tail.totalMissed - (fleet.lastTotalMissed ?? 0),
    closes: w.closes,
    errors: w.errors,
    quiet,
    latencyMs: w.lat.summary(),
    frameLatencyMs: w.frameLat.summary(),
    serverCpuPct: +serverCpu.toFixed(1),
    serverRssMiB: +(serverRss / 2 ** 20).toFixed(1),
    cpuUsPerFrame: w.frames ? +((serverCpu / 100) * secs * 1e6 / w.frames).toFixed(2) : null,
    genCpuPct: +genCpu.toFixed(1),
    senderCpuPct: +senderCpu.toFixed(1),
    redisCpuPct: redis ? +redisCpu.toFixed(1) : null,
    redis: redis ? redis.rate(r0, r1) : null,
    engine: m0 && m1
      ? {
          effectiveTickMs: m1.effectiveTickMs,
          ticksPerSec: +((m1.tickCount - m0.tickCount) / mSecs).toFixed(1),
          meanTickWorkMs: m1.tickCount > m0.tickCount ? +((1000 * (m1.tickSum - m0.tickSum)) / (m1.tickCount - m0.tickCount)).toFixed(2) : null,
          backpressureDrops: m1.drops - m0.drops,
          deliveriesPerSec: Math.round((m1.deliveries - m0.deliveries) / mSecs),
          batchesPerSec: +((m1.batches - m0.batches) / mSecs).toFixed(1),
          sampledOut: m1.received.sampledOut - m0.received.sampledOut,
        }
      : null,
  };
  if (redis && row.sentPerSec > 0) {
    // Per appended message: top-level Redis commands (a script counts once) and Redis CPU.
    row.redisCmdsPerMsg = +(row.redis.opsPerSec / row.sentPerSec).toFixed(2);
    // Round trips: a script call counts once. roomcast's append script runs 7 commands per call
    // (HGET, HINCRBY, 2 XADD, 3 PEXPIRE) and is the only caller of HINCRBY.
    const nested = 7 * (row.redis.perCommand.hincrby ?? 0);
    row.redisCallsPerMsg = +((row.redis.opsPerSec - nested) / row.sentPerSec).toFixed(2);
    row.redisCpuUsPerMsg = Math.round(((row.redisCpuPct / 100) * 1e6) / row.sentPerSec);
  }
  row.serverCpuUsPerMsg = row.sentPerSec > 0 ? Math.round(((row.serverCpuPct / 100) * 1e6) / row.sentPerSec) : null;
  fleet.lastTotalMissed = tail.totalMissed;
  // connections lost before or during the step are reported (open < members), not counted as misses
  row.lostMembers = members - row.open;
  row.ok = row.stepMissed === 0 && row.tailBehindMembers === 0 && quiet;
  if (row.sentPerSec < 0.9 * o.rate) {
    // the server did not take the offered rate (the sender hit its in-flight cap): not sustained
    row.ok = false;
    row.note = `took only ${row.sentPerSec} of ${o.rate} msgs/s in`;
  }
  return row;
}

export function describeRow(r) {
  const l = r.latencyMs;
  return (
    `${r.label} ×${r.workers} rate ${r.rate}/s → ${r.deliveredMsgsPerSec.toLocaleString()} msgs/s, ${r.framesPerSec.toLocaleString()} frames/s ` +
    `(${r.framesPerMemberPerSec}/member/s, ${r.msgsPerFrame} msgs/frame), ${(r.bytesPerSec / 2 ** 20).toFixed(1)} MiB/s, ` +
    `misses ${r.stepMissed} (members with misses so far ${r.membersWithMisses}), latency p50 ${l.p50} p99 ${l.p99} max ${l.max} ms, ` +
    `server CPU ${r.serverCpuPct}% RSS ${r.serverRssMiB} MiB${r.engine ? `, tick ${r.engine.effectiveTickMs.join('/')} ms, drops ${r.engine.backpressureDrops}` : ''}` +
    `${r.ok ? '' : r.stepMissed ? '  [MISSES]' : '  [NOT SUSTAINED]'}`
  );
}

/** Percentile (ms) of a histogram's observations between two snapshots, interpolated within the bucket. */
export function histPctMs(b0, b1, q) {
  const les = [...b1.keys()].sort((a, b) => a - b);
  const d = les.map((le) => (b1.get(le) ?? 0) - (b0?.get(le) ?? 0));
  const total = d[d.length - 1] ?? 0;
  if (total <= 0) return null;
  const want = (q / 100) * total;
  for (let i = 0; i < les.length; i++) {
    if (d[i] < want) continue;
    const lo = i === 0 ? 0 : les[i - 1];
    const below = i === 0 ? 0 : d[i - 1];
    const hi = Number.isFinite(les[i]) ? les[i] : lo;
    const frac = d[i] > below ? (want - below) / (d[i] - below) : 1;
    return Math.round((lo + (hi - lo) * frac) * 1000);
  }
  return null;
}
