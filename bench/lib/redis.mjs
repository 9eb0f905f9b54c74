// A throwaway redis-server for a bench run (like test/redis-server.ts), plus command counters
// for "Redis ops/s".
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, onCleanup, waitFor } from './common.mjs';

export async function launchRedis() {
  const probe = spawnSync('redis-server', ['--version']);
  if (probe.error) throw new Error('redis-server not found: apt-get install redis-server (multi-worker benches need it)');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'roomcast-bench-redis-'));
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--maxclients', '10000'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  process.once('exit', () => proc.exitCode === null && proc.kill('SIGKILL'));
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => {}); // refused until the server is up; waitFor retries
  await waitFor('redis-server', async () => {
    if (client.status !== 'ready') await client.connect().catch(() => {});
    return (await client.ping()) === 'PONG';
  }, 10_000);
  const stop = async () => {
    client.disconnect();
    proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  onCleanup(stop);
  return {
    url,
    pid: proc.pid,
    /** total_commands_processed and per-command calls. */
    async counters() {
      const info = await client.info('all');
      const total = Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? 0);
      const cmds = {};
      for (const m of info.matchAll(/cmdstat_([a-z|_-]+):calls=(\d+)/g)) cmds[m[1]] = Number(m[2]);
      return { at: performance.now(), total, cmds };
    },
    /** ops/s between two counters() (minus the INFO call itself). */
    rate(a, b) {
      const secs = (b.at - a.at) / 1000;
      const per = {};
      for (const [k, v] of Object.entries(b.cmds)) {
        const d = v - (a.cmds[k] ?? 0) - (k === 'info' ? 1 : 0);
        if (d > 0) per[k] = +(d / secs).toFixed(1);
      }
      return { opsPerSec: +((b.total - a.total - 1) / secs).toFixed(1), perCommand: per };
    },
    client,
    stop,
  };
}
