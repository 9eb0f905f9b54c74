// The forked workers' node flags (src/cluster/worker-flags.ts): a smaller young generation unless
// the operator chose a size, and the flags to run that it passes on otherwise unchanged.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { WORKER_SEMI_SPACE_MB, workerExecArgv } from '../src/cluster/worker-flags.js';

describe('workerExecArgv', () => {
  it('adds the semi-space size to the supervisor\'s own flags', () => {
    expect(workerExecArgv([])).toEqual([`--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`]);
    expect(workerExecArgv(['--enable-source-maps'], '--trace-warnings')).toEqual(['--enable-source-maps', `--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`]);
  });

  it('keeps a size the operator chose, in execArgv or NODE_OPTIONS, in any spelling', () => {
    expect(workerExecArgv(['--max-semi-space-size=2'])).toEqual(['--max-semi-space-size=2']);
    expect(workerExecArgv(['--max_semi_space_size', '4'])).toEqual(['--max_semi_space_size', '4']);
    expect(workerExecArgv([], ' --max-old-space-size=512  --max-semi-space-size=32')).toEqual([]);
    expect(workerExecArgv(['--inspect'], '--max-semi-space-sizes-are-not-a-flag')).toContain(`--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`);
  });

  it('is a flag node takes: the young generation of a process started with it is that size at most', () => {
    const probe = "const v8 = require('v8'); const keep = []; for (let i = 0; i < 3e6; i++) { keep.push({ i }); if (keep.length > 1e5) keep.length = 0; } console.log(v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size)";
    const young = Number(execFileSync(process.execPath, [...workerExecArgv([]), '-e', probe], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } }));
    expect(young).toBeGreaterThan(0);
    expect(young).toBeLessThanOrEqual(2 * WORKER_SEMI_SPACE_MB * 2 ** 20);
  });
});
