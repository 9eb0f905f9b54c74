#!/usr/bin/env node
// Scenario 2, many-rooms: thousands of small rooms with traffic (API posts spread over the
// rooms), roomcast and the peers under the same harness. Reports Redis ops/s, server CPU
// per room, delivered msgs/s, misses and latency, and the ratios roomcast/peer.
import { parseFlags, main, log, writeResult, needPackages, needBuild, PEER_PACKAGES, commandLine } from './lib/common.mjs';
import { addrsFor } from './lib/gen.mjs';
import { launchRedis } from './lib/redis.mjs';
import { runContender, ratios } from './lib/contender.mjs';
import { checkLimits } from './lib/limits.mjs';

const f = parseFlags(
  {
    rooms: { type: 'number', default: 2000, help: 'number of rooms' },
    membersPerRoom: { type: 'number', default: 5, help: 'members in each room' },
    workers: { type: 'numbers', default: [2], help: 'worker counts to run' },
    targets: { type: 'list', default: ['roomcast', 'uws', 'ws', 'sio'], help: 'contenders: roomcast,uws,ws,sio' },
    ratesPerRoom: { type: 'numbers', default: [0.2, 1], help: 'messages per second per room (steps)' },
    stepS: { type: 'number', default: 20, help: 'measured seconds per step' },
    warmupS: { type: 'number', default: 3, help: 'seconds at the rate before measuring' },
    gens: { type: 'number', default: 0, help: 'generator processes (0 = auto)' },
    client: { type: 'string', default: 'lite', help: 'member client: lite or ws' },
    latencySample: { type: 'number', default: 1, help: 'per-message latency for every Nth member' },
    connectRate: { type: 'number', default: 4000, help: 'connects per second (all generators)' },
    bodyBytes: { type: 'number', default: 24, help: 'chat body size' },
    label: { type: 'string', default: '', help: 'free text stored with the results' },
  },
  undefined,
  'npm run bench:many-rooms -- [flags]',
);

main(async () => {
  await needBuild();
  await needPackages(f.targets.flatMap((t) => PEER_PACKAGES[t] ?? []), `many-rooms with ${f.targets.join(',')}`);
  const members = f.rooms * f.membersPerRoom;
  await checkLimits({ members, perProcess: Math.min(19_000, members), processes: 8 });
  const redis = await launchRedis();
  const rooms = Array.from({ length: f.rooms }, (_v, i) => `room-${i}`);
  const gens = f.gens || Math.max(2, Math.ceil(members / 18_000));
  const contenders = [];
  for (const workers of f.workers) {
    for (const kind of f.targets) {
      log(`=== many-rooms: ${kind} ×${workers}, ${f.rooms} rooms × ${f.membersPerRoom} members`);
      try {
        const c = await runContender({
          kind, workers, redis, redisForSingle: redis, members, rooms, gens, addrs: addrsFor(members),
          rates: f.ratesPerRoom.map((r) => +(r * f.rooms).toFixed(2)),
          stepS: f.stepS, warmupS: f.warmupS, client: f.client, latencySample: f.latencySample,
          connectRate: f.connectRate, stopOnFail: false,
          senderConfig: { kinds: ['chat'], bodyBytes: f.bodyBytes, maxInflight: 512 },
          targetOpts: { redisAlways: true },
          maxMs: 3_600_000,
        });
        for (const s of c.steps) {
          s.ratePerRoom = +(s.rate / f.rooms).toFixed(3);
          s.serverCpuPctPerRoom = +(s.serverCpuPct / f.rooms).toFixed(4);
          s.serverCpuUsPerRoomPerSec = Math.round((s.serverCpuPct / 100) * 1e6 / f.rooms);
          s.redisOpsPerRoomPerSec = s.redis ? +(s.redis.opsPerSec / f.rooms).toFixed(3) : null;
        }
        contenders.push(c);
      } catch (err) {
        log(`${kind} ×${workers} failed: ${err.message}`);
        contenders.push({ kind, workers, members, error: String(err.message), steps: [] });
      }
    }
  }
  const file = writeResult('many-rooms', {
    flags: f,
    command: commandLine('many-rooms'),
    contenders,
    ratios: ratios(contenders.filter((c) => !c.error)),
  });
  log(`results: ${file}`);
}, 3 * 3_600_000);
