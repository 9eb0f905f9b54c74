#!/usr/bin/env node
// The million bench at several sizes, one after another from one build (the scaling curve of
// issue 15): runs bench/million.mjs once per --curve size, with members/17,000 workers unless
// --workers lists them, and writes bench/results/million-curve-<date>.json listing each size's
// own results file. Every other flag goes to each million.mjs run unchanged.
// `npm run bench:million -- --curve …` comes here too.
import { spawn } from 'node:child_process';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFlags, main, log, writeResult, commandLine, needBuild, sleep, onCleanup, ROOT } from './lib/common.mjs';
import { MEMBERS_PER_WORKER } from './lib/limits.mjs';

const MILLION = fileURLToPath(new URL('./million.mjs', import.meta.url));
const SPEC = {
  curve: { type: 'numbers', default: [100_000, 200_000, 400_000, 700_000, 1_000_000], help: 'member counts, run in this order' },
  workers: { type: 'numbers', default: [], help: `roomcast workers per size, in --curve order (default: members/${MEMBERS_PER_WORKER} each, rounded up)` },
  pauseS: { type: 'number', default: 30, help: "seconds between sizes (the kernel frees the last size's sockets)" },
};

/** This script's flags apart from those for million.mjs (passed on as given). */
function split(argv) {
  const own = [];
  const rest = [];
  const camel = (s) => s.replace(/-([a-z])/g, (_m, c) => c.toUpperCase());
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const to = a.startsWith('--') && SPEC[camel(a.slice(2).split('=')[0])] ? own : rest;
    to.push(a);
    if (!a.includes('=') && argv[i + 1] !== undefined && !argv[i + 1].startsWith('--')) to.push(argv[++i]);
  }
  return { own, rest };
}

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  parseFlags(SPEC, ['--help'], 'npm run bench:million -- --curve 100000,200000,… [--workers w1,w2,…] [--pause-s 30] [any million.mjs flag]\n(million.mjs flags: node bench/million.mjs --help)');
}
const { own, rest } = split(argv);
const f = parseFlags(SPEC, own);
if (rest.some((a) => a === '--members' || a.startsWith('--members='))) throw new Error('--members is set per size by --curve');
if (f.workers.length && f.workers.length !== f.curve.length) throw new Error(`--workers lists ${f.workers.length} counts for ${f.curve.length} sizes`);

/** One million.mjs run; resolves with its results file (relative to the repository) and exit code. */
function runSize(members, workers) {
  return new Promise((resolve) => {
    const args = [MILLION, '--members', String(members), '--workers', String(workers), ...rest];
    log(`=== curve: ${members} members, ${workers} workers: node ${args.map((a) => relative(ROOT, a) || a).join(' ')}`);
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const stop = () => child.exitCode === null && child.kill('SIGINT');
    onCleanup(stop);
    let file = null;
    let tail = '';
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      tail = (tail + d.toString()).slice(-4096);
      const m = /results: (\S+\.json)/.exec(tail);
      if (m) file = relative(ROOT, m[1]);
    });
    child.on('exit', (code) => resolve({ file, exitCode: code }));
  });
}

main(async () => {
  await needBuild();
  const sizes = [];
  for (const [i, members] of f.curve.entries()) {
    if (i > 0) await sleep(f.pauseS * 1000);
    const workers = f.workers[i] ?? Math.ceil(members / MEMBERS_PER_WORKER);
    const t0 = Date.now();
    const { file, exitCode } = await runSize(members, workers);
    sizes.push({ members, workers, file, exitCode, secs: Math.round((Date.now() - t0) / 1000), ...(file ? {} : { error: `no results file (exit ${exitCode})` }) });
    log(`curve: ${members} members → ${file ?? `no results file (exit ${exitCode})`}`);
  }
  const file = writeResult('million-curve', { flags: { ...f, million: rest }, command: commandLine('million'), result: { sizes } });
  log(`curve results: ${file}`);
}, 36 * 3_600_000);
