// A throwaway redis-server (or a local Redis Cluster of 3 masters + 3 replicas) for a bench
// run (like test/redis-server.ts and test/redis-cluster.ts), plus command counters for
// "Redis ops/s". Both answer the same interface; `pids` are every Redis process (CPU).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, onCleanup, waitFor } from './common.mjs';

/**
 * `nice`: the redis-server's scheduling priority (negative: ahead of the server and generators;
 * needs root, else the run says so and goes on at 0). On real hardware Redis has cores of its
 * own; on this 2-core box it competes with ~100 processes in the biggest runs.
 */
export async function launchRedis({ nice = 0 } = {}) {
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
  let niceSet = 0;
  if (nice !== 0) {
    try {
      setPriority(proc.pid, nice);
      niceSet = nice;
    } catch (err) {
      console.error(`redis-server stays at nice 0 (asked ${nice}): ${err.message}`);
    }
  }
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { protocol: 2, lazyConnect: true, maxRetriesPerRequest: 1 });
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
    pids: [proc.pid],
    nice: niceSet,
    flush: () => client.flushall(),
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

/** Top-level commands (a script counts once) and per-command calls, summed over `clients`. */
async function countersOf(clients) {
  let total = 0;
  const cmds = {};
  for (const c of clients) {
    const info = await c.info('all');
    total += Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? 0);
    for (const m of info.matchAll(/cmdstat_([a-z|_-]+):calls=(\d+)/g)) cmds[m[1]] = (cmds[m[1]] ?? 0) + Number(m[2]);
  }
  return { at: performance.now(), total, cmds };
}

/** A local Redis Cluster: 6 redis-server processes, then redis-cli --cluster create. */
export async function launchRedisCluster() {
  const probe = spawnSync('redis-cli', ['--version']);
  if (probe.error) throw new Error('redis-cli not found: apt-get install redis-server');
  const dir = mkdtempSync(join(tmpdir(), 'roomcast-bench-cluster-'));
  const ports = [];
  while (ports.length < 6) {
    const p = await freePort();
    if (!ports.includes(p) && p + 10000 < 65536) ports.push(p);
  }
  const procs = ports.map((port) =>
    spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
      '--maxclients', '10000', '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000'],
    { stdio: ['ignore', 'ignore', 'inherit'] }),
  );
  process.once('exit', () => procs.forEach((p) => p.exitCode === null && p.kill('SIGKILL')));
  const clients = ports.map((port) => {
    const c = new Redis(port, '127.0.0.1', { protocol: 2, lazyConnect: true, maxRetriesPerRequest: 1 });
    c.on('error', () => {});
    return c;
  });
  for (const c of clients) {
    await waitFor('redis cluster node', async () => {
      if (c.status !== 'ready') await c.connect().catch(() => {});
      return (await c.ping()) === 'PONG';
    }, 10_000);
  }
  const made = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`redis-cli --cluster create failed: ${made.stdout}${made.stderr}`);
  await waitFor('cluster_state:ok', async () => (await Promise.all(clients.map((c) => c.call('CLUSTER', 'INFO')))).every((i) => String(i).includes('cluster_state:ok')), 15_000);
  const masters = async () => {
    const out = [];
    for (const c of clients) if (String(await c.info('replication')).includes('role:master')) out.push(c);
    return out;
  };
  const stop = async () => {
    for (const c of clients) c.disconnect();
    for (const p of procs) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  onCleanup(stop);
  return {
    seeds: ports.map((p) => `127.0.0.1:${p}`).join(','),
    pids: procs.map((p) => p.pid),
    async flush() {
      for (const m of await masters()) await m.flushall();
    },
    /** Commands the masters processed (the writes and reads roomcast sends). */
    async counters() {
      return countersOf(await masters());
    },
    rate(a, b) {
      const secs = (b.at - a.at) / 1000;
      const per = {};
      for (const [k, v] of Object.entries(b.cmds)) {
        const d = v - (a.cmds[k] ?? 0) - (k === 'info' ? 2 * clients.length : 0);
        if (d > 0) per[k] = +(d / secs).toFixed(1);
      }
      return { opsPerSec: +((b.total - a.total - 2 * clients.length) / secs).toFixed(1), perCommand: per };
    },
    stop,
  };
}
