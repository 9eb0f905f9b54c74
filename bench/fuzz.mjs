#!/usr/bin/env node
// The long fuzz run (`npm run fuzz`): the CI fuzz suites (test/hardening-fuzz.test.ts and
// test/hardening-http.test.ts) again and again with fresh seeds and more iterations, until the
// time is up. Every run is reproducible from its seed:
//
//   HARDENING_FUZZ_SEED=<seed> HARDENING_FUZZ_SCALE=<scale> npx vitest run --config test/vitest.config.ts test/hardening-fuzz.test.ts
//
// Usage: node bench/fuzz.mjs [--minutes 10] [--scale 10] [--seed N] [--files a,b]
// Writes bench/results/fuzz.json (and bench/results/fuzz-<seed>.log for a failing run); exits
// non-zero when any run failed (an undocumented reply, a 500, a crash, a hang).
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const results = join(root, 'bench', 'results');

function args() {
  const o = { minutes: 10, scale: 10, seed: undefined, files: 'test/hardening-fuzz.test.ts,test/hardening-http.test.ts' };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    const k = a[i].replace(/^--/, '');
    if (k === 'help' || k === 'h') {
      console.log('node bench/fuzz.mjs [--minutes 10] [--scale 10] [--seed N] [--files test/a.test.ts,test/b.test.ts]');
      process.exit(0);
    }
    if (!(k in o)) throw new Error(`unknown option --${k}`);
    o[k] = a[++i];
  }
  return { minutes: Number(o.minutes), scale: Number(o.scale), seed: o.seed === undefined ? undefined : Number(o.seed), files: o.files.split(',') };
}

function runOnce(seed, scale, files) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const env = { ...process.env, HARDENING_FUZZ_SEED: String(seed), HARDENING_FUZZ_SCALE: String(scale) };
    const child = spawn(join(root, 'node_modules', '.bin', 'vitest'), ['run', '--config', 'test/vitest.config.ts', ...files], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code, signal) => {
      // eslint-disable-next-line no-control-regex
      const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
      const summaries = plain.split('\n').filter((l) => /^(ws fuzz|framing fuzz|http fuzz) seed/.test(l.trim())).map((l) => l.trim());
      resolve({ seed, scale, ok: code === 0, code, signal, ms: Date.now() - t0, summaries, output: plain });
    });
  });
}

const o = args();
mkdirSync(results, { recursive: true });
const deadline = Date.now() + o.minutes * 60_000;
const runs = [];
let n = 0;
console.log(`fuzz: ${o.files.join(' ')} at scale ${o.scale} for ${o.minutes} min`);
do {
  // The first run uses --seed when given; the others draw fresh seeds.
  const seed = n === 0 && o.seed !== undefined ? o.seed : randomInt(1, 2 ** 31);
  const r = await runOnce(seed, o.scale, o.files);
  n++;
  const { output, ...rec } = r;
  runs.push(rec);
  console.log(`run ${n}: seed ${seed} ${r.ok ? 'ok' : `FAILED (exit ${r.code ?? r.signal})`} in ${Math.round(r.ms / 1000)} s`);
  for (const s of r.summaries) console.log(`  ${s}`);
  if (!r.ok) {
    const log = join(results, `fuzz-${seed}.log`);
    writeFileSync(log, output);
    console.log(`  output: ${log}`);
    console.log(`  reproduce: HARDENING_FUZZ_SEED=${seed} HARDENING_FUZZ_SCALE=${o.scale} npx vitest run --config test/vitest.config.ts ${o.files.join(' ')}`);
  }
} while (Date.now() < deadline);

const failed = runs.filter((r) => !r.ok);
const report = {
  when: new Date().toISOString(),
  node: process.version,
  minutes: o.minutes,
  scale: o.scale,
  files: o.files,
  runs,
  passed: failed.length === 0,
};
writeFileSync(join(results, 'fuzz.json'), JSON.stringify(report, null, 2) + '\n');
console.log(`fuzz: ${runs.length} runs, ${failed.length} failed; results in bench/results/fuzz.json`);
process.exit(failed.length === 0 ? 0 : 1);
