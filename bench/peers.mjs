#!/usr/bin/env node
// bench:peers — the scenarios that have peers (big-room and many-rooms), each with roomcast
// and every peer in the same run so the ratios are like for like. Flags after `--` go to both
// (e.g. --targets roomcast,uws --step-s 10); --only big-room|many-rooms picks one.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { BENCH_DIR } from './lib/common.mjs';

const argv = process.argv.slice(2);
let only = null;
const rest = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--only') only = argv[++i];
  else rest.push(argv[i]);
}
const shared = new Set(['--targets', '--step-s', '--warmup-s', '--client', '--latency-sample', '--connect-rate', '--gens', '--body-bytes', '--label', '--workers']);
for (const s of ['big-room', 'many-rooms']) {
  if (only && only !== s) continue;
  // pass only the flags both scenarios understand unless --only picks one
  const args = only ? rest : rest.filter((a, i) => (a.startsWith('--') ? shared.has(a.split('=')[0]) : shared.has(rest[i - 1]?.split('=')[0])));
  // big-room's own default is roomcast beside raw uWS; here every peer runs
  if (s === 'big-room' && !args.some((a) => a.split('=')[0] === '--targets')) args.push('--targets', 'roomcast,uws,ws,sio');
  console.log(`\n### bench:peers → ${s} ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [join(BENCH_DIR, `${s}.mjs`), ...args], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
spawnSync(process.execPath, [join(BENCH_DIR, 'report.mjs')], { stdio: 'inherit' });
