#!/usr/bin/env node
// Scenario 3, storm: --senders members flood one room with chat and likes over their
// WebSockets (beyond their per-user limits if asked), --listeners more members only listen,
// and the business API posts system/gift messages. Checks that the room's chat budget holds
// (delivered chat/s at a member ≈ --room-chat-budget), that likes aggregate (the likes summed
// into batches equal the likes acked), that workers stay responsive (HTTP /healthz and `ping`
// op round trips, at idle and during the storm), and the latency of system/gift messages.
// --events on|both runs roomcast with business events (a webhook here, plus the Redis stream
// with --workers > 1); `both` runs the storm twice in one run, events off then on, and reports
// the server CPU per inbound message of each: what the events cost per message.
import { createServer } from 'node:http';
import { parseFlags, main, log, writeResult, sleep, needBuild, commandLine } from './lib/common.mjs';
import { Fleet, addrsFor } from './lib/gen.mjs';
import { launchRedis } from './lib/redis.mjs';
import { Sender } from './lib/sender.mjs';
import { startTarget, http } from './lib/targets.mjs';
import { mark, diff, totalRss } from './lib/proc.mjs';
import { Hist } from './lib/hist.mjs';
import { baseline, metricsSnapshot, waitQuiet, histPctMs } from './lib/steps.mjs';
import { checkLimits } from './lib/limits.mjs';
import { startPingProbe } from './lib/ping-probe.mjs';

const f = parseFlags(
  {
    senders: { type: 'number', default: 10_000, help: 'members that send chat and likes' },
    listeners: { type: 'number', default: 2_000, help: 'members that only listen' },
    workers: { type: 'number', default: 2, help: 'roomcast workers' },
    chatPerSender: { type: 'number', default: 1, help: 'chat messages per second per sender (the per-user limit is 1/s, burst 3)' },
    likesPerSender: { type: 'number', default: 2, help: 'likes per second per sender (limit 10/s)' },
    likeRef: { type: 'boolean', default: false, help: 'likes carry a ref and are acked one by one (before issue 16); default: no ref, as the SDK sends them' },
    likeBatchMs: { type: 'number', default: 1000, help: "the SDK's likeBatchMs: a like frame holds a sender's likes of this long (count, at most 10); 0 = a frame per like (as before the SDK summed taps)" },
    hiRate: { type: 'number', default: 4, help: 'system + gift API posts per second (alternating)' },
    durationS: { type: 'number', default: 30, help: 'storm seconds' },
    idleS: { type: 'number', default: 5, help: 'responsiveness baseline seconds before the storm' },
    budget: { type: 'number', default: 60, help: 'roomcast --room-chat-budget' },
    gens: { type: 'number', default: 0, help: 'generator processes (0 = auto)' },
    connectRate: { type: 'number', default: 4000, help: 'connects per second' },
    events: { type: 'string', default: 'off', help: 'business events: off, on, or both (off then on, same run, CPU per inbound message compared)' },
    cpuProf: { type: 'string', default: '', help: 'directory for V8 CPU profiles of the roomcast processes (node --cpu-prof)' },
    serverArgs: { type: 'list', default: [], help: 'extra roomcast flags, e.g. --server-args=--fanout-shard-members,2000' },
    label: { type: 'string', default: '', help: 'free text stored with the results' },
  },
  undefined,
  'npm run bench:storm -- [flags]',
);

// Likes per like frame, as the SDK sends them (src/client/like-batch.ts); acked likes go one by one.
const likeCount = f.likeRef || f.likeBatchMs <= 0 ? 1 : Math.max(1, Math.min(10, Math.round((f.likesPerSender * f.likeBatchMs) / 1000)));

const pcts = (b0, b1) => ({ p50: histPctMs(b0, b1, 50), p99: histPctMs(b0, b1, 99) });

async function probeLoop(url, hist, stopAt) {
  while (Date.now() < stopAt) {
    const t0 = performance.now();
    try {
      await http('GET', url, { timeoutMs: 5000 });
      hist.record(performance.now() - t0);
    } catch {
      hist.record(5000);
    }
    await sleep(200);
  }
}

/** A business-events webhook that takes every batch and counts its events (runs in this process, not the server's). */
async function eventsSink() {
  let events = 0;
  let batches = 0;
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      batches++;
      events += JSON.parse(Buffer.concat(chunks).toString('utf8')).events.length;
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/events`,
    counts: () => ({ events, batches }),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

main(async () => {
  await needBuild();
  if (!['off', 'on', 'both'].includes(f.events)) throw new Error('--events must be off, on or both');
  const modes = f.events === 'both' ? ['off', 'on'] : [f.events];
  const redis = f.workers > 1 ? await launchRedis() : null;
  const runs = {};
  for (const mode of modes) {
    await redis?.flush();
    runs[mode] = await storm(mode === 'on', redis);
  }
  const result = runs[modes[0]];
  if (f.events === 'both') {
    result.eventsCost = {
      off: runs.off.cpuPerInbound,
      on: runs.on.cpuPerInbound,
      events: runs.on.events,
      extraUsPerInboundMsg: +(runs.on.cpuPerInbound.serverCpuUsPerMsg - runs.off.cpuPerInbound.serverCpuUsPerMsg).toFixed(2),
    };
    log(`events cost: server CPU per inbound message ${runs.off.cpuPerInbound.serverCpuUsPerMsg} µs off → ${runs.on.cpuPerInbound.serverCpuUsPerMsg} µs on (${JSON.stringify(runs.on.events)})`);
  }
  const file = writeResult('storm', { flags: f, command: commandLine('storm'), result });
  log(`results: ${file}`);
}, 2 * 3_600_000);

async function storm(withEvents, redis) {
  const members = f.senders + f.listeners;
  await checkLimits({ members, perProcess: Math.min(19_000, members), processes: 8 });
  const sink = withEvents ? await eventsSink() : null;
  const eventArgs = sink ? ['--events-url', sink.url, ...(redis ? ['--events-stream', 'bench:events'] : [])] : [];
  log(`storm with business events ${withEvents ? 'on' : 'off'}`);
  const target = await startTarget('roomcast', {
    workers: f.workers,
    redisUrl: redis?.url,
    args: ['--room-chat-budget', String(f.budget), ...eventArgs, ...f.serverArgs],
    nodeArgs: f.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${f.cpuProf}`] : undefined,
  });
  const room = 'storm';
  const gens = f.gens || Math.max(2, Math.ceil(members / 15_000));
  const fleet = new Fleet({
    procs: gens, members, proto: 'roomcast', client: 'lite', urls: target.urls, rooms: [room],
    addrs: addrsFor(members), secret: target.secret, uidPrefix: 's', tokenTtlSec: 7200,
    latencySample: 16, hiLatency: true, needLikes: true, connectRate: f.connectRate, maxPending: 1000,
    senders: f.senders, maxMs: 3_600_000,
  });
  await fleet.start();
  const conn = await fleet.waitConnected({ label: 'storm: ' });
  const sender = new Sender();
  const api = target.urls[0];
  await sender.start({ host: api.host, port: api.port, apiKey: target.apiKey, rooms: [room], rate: 0, kinds: ['system', 'gift'] });
  await baseline(target, fleet, [room]);
  await fleet.ping(100);
  const probe = await startPingProbe({ url: api, secret: target.secret, room });

  // responsiveness at idle
  const idleHttp = new Hist();
  await fleet.window(true);
  probe.window();
  await probeLoop(`${target.apiBase}/healthz`, idleHttp, Date.now() + f.idleS * 1000);
  const idle = await fleet.window(true);
  const idleProbe = probe.window();

  // the storm
  log(`storm: ${f.senders} senders × (${f.chatPerSender} chat + ${f.likesPerSender} likes)/s, ${likeCount} likes per like frame, ${f.hiRate} system/gift/s, ${f.durationS} s`);
  const m0 = await metricsSnapshot(target);
  const mAt0 = performance.now();
  const pids = target.pids();
  const cpu0 = mark([...pids, ...fleet.pids(), ...(redis ? [redis.pid] : [])]);
  const r0 = redis ? await redis.counters() : null;
  await sender.window(true);
  const t0 = performance.now();
  await fleet.send({ chatPerSec: f.chatPerSender, likesPerSec: f.likesPerSender, likeRef: f.likeRef, likeCount, sendMaxMs: f.durationS * 1000 + 2000 });
  await sender.rate({ rate: f.hiRate, rooms: [room], kinds: ['system', 'gift'], priority: 'high' });
  const stormHttp = new Hist();
  const probing = probeLoop(`${target.apiBase}/healthz`, stormHttp, Date.now() + f.durationS * 1000);
  const end = Date.now() + f.durationS * 1000;
  while (Date.now() < end) {
    await sleep(Math.min(5000, end - Date.now()));
    const w = await fleet.window(false);
    const s = (performance.now() - t0) / 1000;
    log(`  storm ${s.toFixed(0)} s: sent chat ${w.sent.chat} likes ${w.sent.like}; member 0 saw ${(w.chat0 / s).toFixed(1)} chat/s, ${w.likes0} likes; errors ${JSON.stringify(w.errors)}; system/gift p99 ${w.hiLat.pct(99)} ms`);
  }
  await probing;
  const stormProbe = probe.window();
  probe.stop();
  // The storm's own ticks and latencies, before the drain (whose quiet ticks would dilute them).
  const mStormSecs = (performance.now() - mAt0) / 1000;
  const mStorm = await metricsSnapshot(target);
  await fleet.stopSending();
  await sender.rate({ rate: 0, rooms: [room] });
  const cpu = diff(cpu0);
  const secs = (performance.now() - t0) / 1000;
  await sender.drain(15_000);
  await waitQuiet(fleet, 2500, 30_000);
  const w = await fleet.window(true);
  const snd = await sender.window(true);
  const r1 = redis ? await redis.counters() : null;
  const m1 = await metricsSnapshot(target);
  const tail = await fleet.expect(await target.finalSeqs([room]));
  const serverCpu = cpu.each.filter((e) => pids.includes(e.pid)).reduce((a, e) => a + e.cpuPct, 0);
  const genPids = fleet.pids();
  const genCpu = cpu.each.filter((e) => genPids.includes(e.pid)).reduce((a, e) => a + e.cpuPct, 0);
  // Likes sent without a ref that were shed under lag get no reply: the server counts them.
  const shedLikes = m0 && m1 ? m1.shed.like - m0.shed.like : 0;
  // A refused like frame (an error without a ref) refuses its whole count.
  const likesLogged = f.likeRef ? w.acks.likeShown : w.sent.like - w.unrefErrors * likeCount - shedLikes;
  const ticks = m0 && mStorm ? mStorm.tickCount - m0.tickCount : 0;
  const inbound = w.sent.chat + w.sent.like + snd.sent;
  const inboundFrames = w.sent.chat + w.sent.likeFrames + snd.sent;
  const cpuUs = (serverCpu / 100) * secs * 1e6; // CPU % over the storm window × its length
  const result = {
    eventsMode: withEvents ? 'on' : 'off',
    cpuPerInbound: {
      inboundMsgs: inbound,
      // Frames and API posts: a like frame may hold several likes (likeCount).
      inboundFrames,
      likesPerFrame: likeCount,
      serverCpuPct: +serverCpu.toFixed(1),
      serverCpuUsPerMsg: inbound > 0 ? +(cpuUs / inbound).toFixed(2) : null,
      serverCpuUsPerFrame: inboundFrames > 0 ? +(cpuUs / inboundFrames).toFixed(2) : null,
    },
    members, senders: f.senders, listeners: f.listeners, workers: f.workers,
    connect: { opened: conn.opened, failed: conn.failed, closed: conn.closed, secs: +conn.secs.toFixed(1), perSec: Math.round(conn.perSec) },
    stormSecs: +secs.toFixed(1),
    offered: { chatPerSec: +(w.sent.chat / secs).toFixed(0), likesPerSec: +(w.sent.like / secs).toFixed(0), hiPerSec: +(snd.sent / secs).toFixed(1) },
    acks: w.acks,
    errors: w.errors,
    budget: {
      configured: f.budget,
      deliveredChatPerSecAtMember0: +(w.chat0 / secs).toFixed(1),
      holds: w.chat0 / secs <= f.budget * 1.1,
    },
    likes: {
      withRef: f.likeRef,
      // Acked likes; without refs, the likes sent less those refused (errors without a ref).
      shed: shedLikes,
      acked: likesLogged,
      summedIntoBatchesAtMember0: w.likes0,
      aggregateExactly: w.likes0 === likesLogged,
    },
    hiLatencyMs: w.hiLat.summary(),
    chatLatencyMs: w.lat.summary(),
    frameLatencyMs: w.frameLat.summary(),
    responsiveness: {
      // pingRttMs: from generators' sockets (their own loop lag included); probePingRttMs: from
      // the probe's member sockets in this process (bench/lib/ping-probe.mjs).
      idle: { httpMs: idleHttp.summary(), pingRttMs: idle.rtt.summary(), probePingRttMs: idleProbe },
      storm: { httpMs: stormHttp.summary(), pingRttMs: w.rtt.summary(), probePingRttMs: stormProbe },
    },
    delivered: { framesPerSec: Math.round(w.frames / secs), msgsPerSec: Math.round(w.msgs / secs), bytesPerSec: Math.round(w.bytes / secs) },
    misses: { stepMissed: tail.totalMissed, membersWithMisses: tail.withMisses, tailBehind: tail.behind, closes: w.closes },
    serverCpuPct: +serverCpu.toFixed(1),
    generatorCpuPct: +genCpu.toFixed(1),
    serverRssMiB: +(totalRss(pids) / 2 ** 20).toFixed(1),
    redis: redis ? redis.rate(r0, r1) : null,
    engine: m0 && m1 && mStorm ? {
      // Ticks run during the storm: the mean effective tick is the window over the ticks per worker.
      effectiveTickMs: m1.effectiveTickMs,
      stormMeanTickMs: ticks > 0 ? Math.round((mStormSecs * 1000 * f.workers) / ticks) : null,
      // Accepted → handed to the sockets (publish returned), all kinds; the members' frameLatencyMs adds their own reading.
      serverDeliveryLatencyMs: pcts(m0.deliveryLatency, mStorm.deliveryLatency),
      shed: { chat: m1.shed.chat - m0.shed.chat, like: shedLikes },
      busAppendMs: pcts(m0.busAppend, mStorm.busAppend),
      busReadLagMs: pcts(m0.busReadLag, mStorm.busReadLag),
      tickWorkMs: pcts(m0.tickDuration, mStorm.tickDuration),
      meanTickWorkMs: m1.tickCount > m0.tickCount ? +((1000 * (m1.tickSum - m0.tickSum)) / (m1.tickCount - m0.tickCount)).toFixed(2) : null,
      accepted: m1.received.accepted - m0.received.accepted,
      sampledOut: m1.received.sampledOut - m0.received.sampledOut,
      rateLimited: m1.received.rateLimited - m0.received.rateLimited,
      backpressureDrops: m1.drops - m0.drops,
      // The cost of a message is mostly socket writes (~10 µs each): batch frames to members,
      // and reply writes (acks, pongs, errors; a reply riding a batch is in that batch's write).
      socketWrites: {
        batches: mStorm.deliveries - m0.deliveries,
        replies: mStorm.replyWrites - m0.replyWrites,
        perInbound: inbound > 0 ? +((mStorm.deliveries - m0.deliveries + mStorm.replyWrites - m0.replyWrites) / inbound).toFixed(3) : null,
      },
    } : null,
  };
  log(`budget: ${result.budget.deliveredChatPerSecAtMember0} chat/s delivered (budget ${f.budget}) → ${result.budget.holds ? 'holds' : 'EXCEEDED'}`);
  log(`likes (${f.likeRef ? 'with ref, acked' : 'no ref: sent less refused'}): ${result.likes.acked}, summed into batches ${result.likes.summedIntoBatchesAtMember0} → ${result.likes.aggregateExactly ? 'exact' : 'MISMATCH'}`);
  log(`server CPU ${result.serverCpuPct}%, generators ${result.generatorCpuPct}%; storm tick ${result.engine?.stormMeanTickMs} ms; server delivery latency ${JSON.stringify(result.engine?.serverDeliveryLatencyMs)}, tick work ${JSON.stringify(result.engine?.tickWorkMs)}, bus append ${JSON.stringify(result.engine?.busAppendMs)}, read lag ${JSON.stringify(result.engine?.busReadLagMs)}`);
  if (result.engine) log(`socket writes during the storm: ${result.engine.socketWrites.batches} batch, ${result.engine.socketWrites.replies} reply; ${result.engine.socketWrites.perInbound} per inbound message`);
  log(`system/gift latency: ${JSON.stringify(result.hiLatencyMs)}; healthz idle p99 ${result.responsiveness.idle.httpMs.p99} ms, storm p99 ${result.responsiveness.storm.httpMs.p99} ms; ping rtt storm p99 ${result.responsiveness.storm.pingRttMs.p99} ms of ${result.responsiveness.storm.pingRttMs.n} (generator sockets), ${result.responsiveness.storm.probePingRttMs.p99} ms of ${result.responsiveness.storm.probePingRttMs.n} (probe sockets)`);
  log(`misses: ${JSON.stringify(result.misses)}; acks ${JSON.stringify(result.acks)}; errors ${JSON.stringify(result.errors)}`);
  await fleet.stop();
  await sender.stop();
  await target.stop();
  if (sink) {
    result.events = sink.counts();
    await sink.close();
  }
  return result;
}
