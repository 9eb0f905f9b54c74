#!/usr/bin/env node
// Scenario 2, many-rooms: thousands of small rooms with traffic (API posts spread over the
// rooms), roomcast and the peers under the same harness, at one or more room counts in one
// run. Reports Redis commands and Redis CPU per message, idle Redis load, server CPU, RSS
// per room, delivered msgs/s, misses and latency, and the ratios roomcast/peer. With
// --redis-cluster roomcast also runs on a local Redis Cluster (3 masters + 3 replicas), and
// with --wait-replicas N once more with acks that wait for N replicas; the peers keep their
// single Redis.
import { parseFlags, main, log, writeResult, needPackages, needBuild, PEER_PACKAGES, commandLine } from './lib/common.mjs';
import { addrsFor } from './lib/gen.mjs';
import { launchRedis, launchRedisCluster } from './lib/redis.mjs';
import { mark, diff } from './lib/proc.mjs';
import { runContender, ratios } from './lib/contender.mjs';
import { checkLimits } from './lib/limits.mjs';

const f = parseFlags(
  {
    rooms: { type: 'numbers', default: [2000], help: 'room counts to run (e.g. 2000,20000)' },
    redisCluster: { type: 'boolean', default: false, help: 'also run roomcast on a local Redis Cluster (3 masters, 3 replicas)' },
    waitReplicas: { type: 'number', default: 0, help: 'with --redis-cluster, also run roomcast with --redis-wait-replicas N' },
    idleS: { type: 'number', default: 10, help: 'seconds of idle Redis load measured before the steps (roomcast)' },
    membersPerRoom: { type: 'number', default: 5, help: 'members in each room' },
    workers: { type: 'numbers', default: [2], help: 'worker counts to run' },
    targets: { type: 'list', default: ['roomcast', 'uws', 'ws', 'sio'], help: 'contenders: roomcast,uws,ws,sio' },
    ratesPerRoom: { type: 'numbers', default: [0.2, 1], help: 'messages per second per room (steps)' },
    rates: { type: 'numbers', default: [], help: 'messages per second over all rooms (steps; overrides --rates-per-room, the same at every room count)' },
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
  const maxMembers = Math.max(...f.rooms) * f.membersPerRoom;
  await checkLimits({ members: maxMembers, perProcess: Math.min(19_000, maxMembers), processes: 8 });
  const redis = await launchRedis();
  const cluster = f.redisCluster ? await launchRedisCluster() : null;
  const contenders = [];
  for (const roomCount of f.rooms) {
    const members = roomCount * f.membersPerRoom;
    const rooms = Array.from({ length: roomCount }, (_v, i) => `room-${i}`);
    const gens = f.gens || Math.max(2, Math.ceil(members / 18_000));
    // roomcast on one Redis, then (optionally) on the Cluster, and on the Cluster with WAIT.
    const variants = [
      { kind: 'roomcast', label: 'roomcast', redis },
      ...(cluster ? [{ kind: 'roomcast', label: 'roomcast (Redis Cluster)', redis: cluster }] : []),
      ...(cluster && f.waitReplicas > 0 ? [{ kind: 'roomcast', label: `roomcast (Redis Cluster, WAIT ${f.waitReplicas})`, redis: cluster, args: ['--redis-wait-replicas', String(f.waitReplicas)] }] : []),
      ...f.targets.filter((t) => t !== 'roomcast').map((kind) => ({ kind, redis })),
    ].filter((v) => f.targets.includes(v.kind));
    for (const workers of f.workers) {
      for (const v of variants) {
        const kind = v.kind;
        log(`=== many-rooms: ${v.label ?? kind} ×${workers}, ${roomCount} rooms × ${f.membersPerRoom} members`);
        try {
          const c = await runContender({
            kind, workers, redis, roomcastRedis: v.redis === redis ? undefined : v.redis, redisForSingle: redis, members, rooms, gens, addrs: addrsFor(members),
            rates: f.rates.length ? f.rates : f.ratesPerRoom.map((r) => +(r * roomCount).toFixed(2)),
            stepS: f.stepS, warmupS: f.warmupS, client: f.client, latencySample: f.latencySample,
            connectRate: f.connectRate, stopOnFail: false,
            senderConfig: { kinds: ['chat'], bodyBytes: f.bodyBytes, maxInflight: 512 },
            targetOpts: { redisAlways: true, args: v.args },
            maxMs: 3_600_000,
            beforeSteps: async (target) => {
              // Idle: members connected, nothing sent. Redis load must not grow with rooms.
              const r0 = await v.redis.counters();
              const c0 = mark(target.pids());
              await new Promise((r) => setTimeout(r, f.idleS * 1000));
              const idle = { redis: v.redis.rate(r0, await v.redis.counters()), serverCpuPct: diff(c0).cpuPct };
              log(`idle: Redis ${idle.redis.opsPerSec} commands/s, server CPU ${idle.serverCpuPct}%`);
              return idle;
            },
          });
          if (v.label) c.label = v.label;
          c.rooms = roomCount;
          for (const s of c.steps) {
            s.ratePerRoom = +(s.rate / roomCount).toFixed(3);
            s.serverCpuPctPerRoom = +(s.serverCpuPct / roomCount).toFixed(4);
            s.serverCpuUsPerRoomPerSec = Math.round((s.serverCpuPct / 100) * 1e6 / roomCount);
            s.redisOpsPerRoomPerSec = s.redis ? +(s.redis.opsPerSec / roomCount).toFixed(3) : null;
            s.serverRssPerRoomKiB = +((s.serverRssMiB * 1024) / roomCount).toFixed(2);
          }
          contenders.push(c);
        } catch (err) {
          log(`${v.label ?? kind} ×${workers} failed: ${err.message}`);
          contenders.push({ kind, label: v.label ?? kind, workers, members, rooms: roomCount, error: String(err.message), steps: [] });
        }
      }
    }
  }
  const file = writeResult('many-rooms', {
    flags: f,
    command: commandLine('many-rooms'),
    contenders,
    ratios: f.rooms.flatMap((n) => ratios(contenders.filter((c) => !c.error && c.rooms === n)).map((r) => ({ rooms: n, ...r }))),
  });
  log(`results: ${file}`);
}, 3 * 3_600_000);
