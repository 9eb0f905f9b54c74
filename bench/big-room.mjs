#!/usr/bin/env node
// Scenario 1, big-room: one room, --members-per-worker members per worker (18k by default),
// 1 and 2 workers, API senders at rising rates; roomcast and each peer under the identical
// harness in the same run. Reports the highest delivered msgs/s at which every member still
// got every batch (and p99 stayed under --max-p99-ms), latency, CPU, RSS per member, and the
// ratios roomcast/peer.
import { parseFlags, main, log, writeResult, needPackages, needBuild, PEER_PACKAGES, commandLine } from './lib/common.mjs';
import { addrsFor } from './lib/gen.mjs';
import { launchRedis } from './lib/redis.mjs';
import { runContender, ratios } from './lib/contender.mjs';
import { checkLimits } from './lib/limits.mjs';

const f = parseFlags(
  {
    membersPerWorker: { type: 'number', default: 18_000, help: 'members per server worker' },
    workers: { type: 'numbers', default: [1, 2], help: 'worker counts to run' },
    targets: { type: 'list', default: ['roomcast', 'uws', 'ws', 'sio'], help: 'contenders: roomcast,uws,ws,sio' },
    rates: { type: 'numbers', default: [1, 5, 20, 50, 100, 200, 500, 1000], help: 'sender rates (msgs/s), rising' },
    stepS: { type: 'number', default: 20, help: 'measured seconds per rate' },
    warmupS: { type: 'number', default: 3, help: 'seconds at the rate before measuring' },
    gens: { type: 'number', default: 0, help: 'generator processes (0 = max(2, members/18000))' },
    client: { type: 'string', default: 'lite', help: 'member client: lite (bare RFC 6455 on net.Socket) or ws' },
    latencySample: { type: 'number', default: 8, help: 'per-message latency for every Nth member (frame latency: all)' },
    connectRate: { type: 'number', default: 4000, help: 'connects per second (all generators)' },
    maxP99Ms: { type: 'number', default: 2000, help: 'a step whose p99 latency is above this does not count as sustained' },
    stopOnFail: { type: 'boolean', default: true, help: 'stop raising the rate after a step with misses' },
    bodyBytes: { type: 'number', default: 24, help: 'chat body size' },
    tickMs: { type: 'number', default: 50, help: 'tick for roomcast and the peers' },
    maxTickMs: { type: 'number', default: 0, help: 'roomcast --max-tick-ms (0 = its default)' },
    label: { type: 'string', default: '', help: 'free text stored with the results' },
  },
  undefined,
  'npm run bench:big-room -- [flags]',
);

main(async () => {
  await needBuild();
  await needPackages(f.targets.flatMap((t) => PEER_PACKAGES[t] ?? []), `big-room with ${f.targets.join(',')}`);
  const maxMembers = f.membersPerWorker * Math.max(...f.workers);
  await checkLimits({ members: maxMembers, perProcess: Math.min(19_000, f.membersPerWorker), processes: 8 }, { strict: false });
  const redis = f.workers.some((w) => w > 1) || f.targets.includes('sio') ? await launchRedis() : null;
  const contenders = [];
  for (const workers of f.workers) {
    const members = f.membersPerWorker * workers;
    const gens = f.gens || Math.max(2, Math.ceil(members / 18_000));
    for (const kind of f.targets) {
      log(`=== big-room: ${kind} ×${workers}, ${members} members, ${gens} generator processes`);
      try {
        contenders.push(
          await runContender({
            kind, workers, redis, members, rooms: ['big'], gens, addrs: addrsFor(members), rates: f.rates,
            stepS: f.stepS, warmupS: f.warmupS, client: f.client, latencySample: f.latencySample,
            connectRate: f.connectRate, maxP99Ms: f.maxP99Ms, stopOnFail: f.stopOnFail,
            senderConfig: { kinds: ['chat'], bodyBytes: f.bodyBytes },
            targetOpts: {
              tickMs: f.tickMs,
              maxTickMs: f.maxTickMs || undefined,
              args: ['--room-chat-budget', '1000000', '--api-rate', '1000000'],
            },
            maxMs: 3_600_000,
          }),
        );
      } catch (err) {
        log(`${kind} ×${workers} failed: ${err.message}`);
        contenders.push({ kind, workers, members, error: String(err.message), steps: [] });
      }
    }
  }
  const file = writeResult('big-room', {
    flags: f,
    command: commandLine('big-room'),
    contenders,
    ratios: ratios(contenders.filter((c) => !c.error)),
  });
  log(`results: ${file}`);
  for (const c of contenders) log(`${c.label ?? c.kind} ×${c.workers}: sustained ${JSON.stringify(c.sustained ?? c.error ?? null)}`);
}, 4 * 3_600_000);
