// A real redis-server per test file on a free port, with outage controls: stop (optionally
// saving, so start() brings the data back, like a failover), start, restart-empty, and
// pause/resume (a frozen, starved server).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort as freePortOn } from '../src/gateway/free-port.js';

const BOOT_TIMEOUT_MS = 5000;

export class RedisServer {
  private proc: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'roomcast-redis-'));

  private constructor(readonly port: number) {
    // A crashed test run must not leave servers behind.
    process.once('exit', () => this.proc?.kill('SIGKILL'));
  }

  get running(): boolean {
    return this.proc !== undefined;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async launch(): Promise<RedisServer> {
    const probe = spawnSync('redis-server', ['--version']);
    if (probe.error) {
      throw new Error('redis-server not found; the Redis bus tests need it: apt-get install redis-server', { cause: probe.error });
    }
    // The free port may be taken between probing and binding (parallel test files): retry.
    for (let attempt = 1; ; attempt++) {
      const server = new RedisServer(await freePort());
      try {
        await server.start();
        return server;
      } catch (err) {
        await server.close();
        if (attempt >= 3) throw err;
      }
    }
  }

  /** Starts redis-server (loading the dump a stop({ save: true }) left) and waits for PING. */
  async start(): Promise<void> {
    if (this.proc) throw new Error('redis-server already running');
    const proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--dbfilename', 'dump.rdb'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.proc = proc;
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const deadline = Date.now() + BOOT_TIMEOUT_MS;
    while (!(await ping(this.port))) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        proc.kill('SIGKILL');
        this.proc = undefined;
        throw new Error(`redis-server on port ${this.port} did not start: ${stderr || `exit ${proc.exitCode}`}`);
      }
      await sleep(20);
    }
  }

  /** Stops the server; with save, its data comes back on start(). */
  async stop(opts: { save?: boolean } = {}): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.proc = undefined;
    const exited = new Promise<void>((resolve) => (proc.exitCode !== null ? resolve() : proc.once('exit', () => resolve())));
    if (opts.save) await command(this.port, 'SHUTDOWN SAVE').catch(() => proc.kill('SIGKILL'));
    else {
      rmSync(join(this.dir, 'dump.rdb'), { force: true });
      proc.kill('SIGKILL');
    }
    await exited;
  }

  /** Freezes the server (SIGSTOP): connections stay open, nothing is answered until resume(). */
  pause(): void {
    this.proc?.kill('SIGSTOP');
  }

  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  /** Kills the server and starts it empty on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Sends one inline command and returns the raw reply (for test assertions). */
  command(line: string): Promise<string> {
    return command(this.port, line);
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const freePort = (): Promise<number> => freePortOn('127.0.0.1');

async function ping(port: number): Promise<boolean> {
  try {
    return (await command(port, 'PING')).startsWith('+PONG');
  } catch {
    return false;
  }
}

/** One inline command over a fresh socket; resolves with the first chunk of the reply. */
function command(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ port, host: '127.0.0.1' });
    sock.setTimeout(1000, () => sock.destroy(new Error('timeout')));
    sock.once('error', reject);
    sock.once('connect', () => sock.write(`${line}\r\n`));
    sock.once('data', (d) => {
      resolve(d.toString());
      sock.destroy();
    });
    // SHUTDOWN closes without a reply.
    sock.once('close', () => resolve(''));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
