#!/usr/bin/env node
// Adaptive egress: what happens when a tick's fan-out cannot finish within the tick.
// --members members (18k by default) in one room on one worker, senders at --rates; run
// "before" = adaptive tick off (--max-tick-ms = --tick-ms) and "after" = the default
// --max-tick-ms, plus the raw uWS peer (a fixed tick) for reference. Reports frames/s,
// frames per member per second, msgs per frame, misses (backpressure skips), latency, the
// effective tick and server RSS.
import { parseFlags, main, log, writeResult, needBuild, commandLine } from './lib/common.mjs';
import { addrsFor } from './lib/gen.mjs';
import { runContender } from './lib/contender.mjs';

const f = parseFlags(
  {
    members: { type: 'number', default: 18_000, help: 'members in the room (one worker)' },
    rates: { type: 'numbers', default: [20, 200], help: 'sender rates (msgs/s): every tick has something to send' },
    stepS: { type: 'number', default: 30, help: 'measured seconds per rate' },
    warmupS: { type: 'number', default: 5, help: 'seconds at the rate before measuring' },
    tickMs: { type: 'number', default: 50, help: '--tick-ms' },
    maxTickMs: { type: 'number', default: 1000, help: '--max-tick-ms of the "after" run (roomcast default)' },
    withUws: { type: 'boolean', default: true, help: 'also run the raw uWS peer at the fixed tick' },
    gens: { type: 'number', default: 0, help: 'generator processes (0 = max(2, members/18000))' },
    latencySample: { type: 'number', default: 8, help: 'per-message latency for every Nth member' },
    label: { type: 'string', default: '', help: 'free text stored with the results' },
  },
  undefined,
  'npm run bench:adaptive -- [flags]',
);

main(async () => {
  await needBuild();
  const gens = f.gens || Math.max(2, Math.ceil(f.members / 18_000));
  const common = {
    workers: 1, redis: null, members: f.members, rooms: ['egress'], gens, addrs: addrsFor(f.members),
    rates: f.rates, stepS: f.stepS, warmupS: f.warmupS, latencySample: f.latencySample, connectRate: 4000,
    stopOnFail: false, senderConfig: { kinds: ['chat'], bodyBytes: 24 }, quietMs: 2500, drainMaxMs: 60_000, maxMs: 3_600_000,
  };
  const runs = [];
  for (const [name, maxTickMs] of [['before (adaptive off)', f.tickMs], ['after (adaptive on)', f.maxTickMs]]) {
    log(`=== adaptive: roomcast ${name}: --tick-ms ${f.tickMs} --max-tick-ms ${maxTickMs}`);
    const c = await runContender({
      ...common, kind: 'roomcast',
      targetOpts: { tickMs: f.tickMs, maxTickMs, args: ['--room-chat-budget', '1000000', '--api-rate', '1000000'] },
    });
    runs.push({ name, maxTickMs, ...c });
  }
  if (f.withUws) {
    log(`=== adaptive: raw uWS peer, fixed ${f.tickMs} ms tick`);
    runs.push({ name: `raw uWS (fixed ${f.tickMs} ms tick)`, maxTickMs: f.tickMs, ...(await runContender({ ...common, kind: 'uws', targetOpts: { tickMs: f.tickMs } })) });
  }
  const file = writeResult('adaptive', { flags: f, command: commandLine('adaptive'), runs });
  log(`results: ${file}`);
}, 2 * 3_600_000);
