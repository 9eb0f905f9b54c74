// A real Redis Cluster per test file: 3 masters and 3 replicas on free loopback ports
// (redis-server --cluster-enabled yes ×6, then redis-cli --cluster create), with a failover
// control: kill -9 the master that serves a key.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../src/gateway/free-port.js';

const NODES = 6;
const BOOT_TIMEOUT_MS = 15_000;

export class RedisCluster {
  private readonly procs = new Map<number, ChildProcess>();
  private readonly dir = mkdtempSync(join(tmpdir(), 'roomcast-cluster-'));

  private constructor(readonly ports: number[]) {
    process.once('exit', () => {
      for (const p of this.procs.values()) p.kill('SIGKILL');
    });
  }

  /** Seed nodes as --redis-cluster takes them. */
  get seeds(): string {
    return this.ports.map((p) => `127.0.0.1:${p}`).join(',');
  }

  get nodes(): Array<{ host: string; port: number }> {
    return this.ports.map((port) => ({ host: '127.0.0.1', port }));
  }

  static async launch(): Promise<RedisCluster> {
    const ports: number[] = [];
    while (ports.length < NODES) {
      const p = await freePort('127.0.0.1');
      // The cluster bus listens on port + 10000: both must be free.
      if (!ports.includes(p) && p + 10000 < 65536) ports.push(p);
    }
    const c = new RedisCluster(ports);
    try {
      for (const port of ports) c.spawnNode(port);
      await Promise.all(ports.map((p) => waitFor(() => ping(p), `redis node ${p}`)));
      const made = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], {
        encoding: 'utf8',
        timeout: BOOT_TIMEOUT_MS,
      });
      if (made.status !== 0) throw new Error(`redis-cli --cluster create failed: ${made.stdout}${made.stderr}`);
      await waitFor(async () => (await Promise.all(ports.map((p) => clusterOk(p)))).every(Boolean), 'cluster_state:ok');
      return c;
    } catch (err) {
      await c.close();
      throw err;
    }
  }

  private spawnNode(port: number): void {
    const proc = spawn(
      'redis-server',
      [
        '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir,
        '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000',
        // A replica of a killed master takes over without waiting for a human.
        '--cluster-replica-validity-factor', '0',
      ],
      { stdio: 'ignore' },
    );
    this.procs.set(port, proc);
  }

  /** The port of the master serving `key`'s slot. */
  async masterOf(key: string): Promise<number> {
    const admin = quiet(new Redis(this.ports.find((p) => this.procs.has(p))!, '127.0.0.1', { retryStrategy: () => null }));
    try {
      const slot = Number(await admin.call('CLUSTER', 'KEYSLOT', key));
      const slots = (await admin.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, ...unknown[]], ...unknown[]]>;
      const range = slots.find(([from, to]) => slot >= from && slot <= to);
      if (!range) throw new Error(`no master for slot ${slot}`);
      return Number(range[2][1]);
    } finally {
      admin.disconnect();
    }
  }

  /** kill -9 of one node (no failover help); resolves once a replica serves its slots. */
  async kill(port: number, key: string): Promise<void> {
    this.procs.get(port)?.kill('SIGKILL');
    this.procs.delete(port);
    await waitFor(async () => {
      const alive = this.ports.filter((p) => this.procs.has(p));
      if (!(await Promise.all(alive.map((p) => clusterOk(p)))).every(Boolean)) return false;
      return (await this.masterOf(key).catch(() => port)) !== port;
    }, 'failover', 20_000);
  }

  async close(): Promise<void> {
    for (const p of this.procs.values()) p.kill('SIGKILL');
    this.procs.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function hasRedisCli(): boolean {
  return !spawnSync('redis-cli', ['--version']).error;
}

async function ping(port: number): Promise<boolean> {
  const r = quiet(new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 }));
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

async function clusterOk(port: number): Promise<boolean> {
  const r = quiet(new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 }));
  try {
    await r.connect();
    return String(await r.call('CLUSTER', 'INFO')).includes('cluster_state:ok');
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

/** A probe's connection errors are answers (the node is down), not events to report. */
function quiet<T extends Redis>(r: T): T {
  r.on('error', () => undefined);
  return r;
}

async function waitFor(cond: () => Promise<boolean>, what: string, timeoutMs = BOOT_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
