// Opens the bus's Redis connections, to one Redis (`--redis`) or a Redis Cluster
// (`--redis-cluster`), all with the same failure policy, and derives the bus's one status
// from theirs.
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { backoffMs } from '../../util/backoff.js';
import type { BusStatus } from '../bus.js';
import { defineScripts, type Client } from './scripts.js';

export interface SeedNode {
  host: string;
  port: number;
}

export type RedisTarget = { url: string } | { cluster: SeedNode[] };

export interface ConnectionOptions {
  target: RedisTarget;
  /** A blocking read without a reply for this long past its BLOCK fails. */
  commandTimeoutMs: number;
  /**
   * ioredis' own timeout on the command connection. Its timer is not late-aware (after a
   * stall it fires before the reply waiting in the socket is read), so the commands there
   * are bounded by their callers (patience.ts), and this only catches a connection that
   * stopped answering.
   */
  lastResortMs: number;
  /** Cap of the jittered exponential reconnect backoff. */
  reconnectMaxMs: number;
  log?: Logger;
}

/** Blocking readers: their BLOCK bounds the reply time, so the timeout covers it too. */
export interface ReaderOptions {
  name: string;
  blockMs: number;
}

export class Connections {
  private readonly all = new Set<Redis | Cluster>();
  /** The connections the bus's status is derived from. */
  private readonly essential = new Set<Redis | Cluster>();
  private state: BusStatus = 'connecting';
  private everReady = false;

  constructor(
    private readonly o: ConnectionOptions,
    /** Status changes, after the first ready (start() reports that one itself). */
    private readonly onStatus: (s: BusStatus) => void,
    private readonly onReconnect: () => void,
  ) {}

  get status(): BusStatus {
    return this.state;
  }

  get cluster(): boolean {
    return 'cluster' in this.o.target;
  }

  /** The shared command connection: appends, heads, ranges, counts; auto-pipelined per node. */
  main(name: string): Client {
    return this.open(name, { enableAutoPipelining: true, commandTimeout: this.o.lastResortMs });
  }

  /**
   * A dedicated connection for one blocking XREAD loop. A reader of one Cluster partition is
   * not essential: while it reconnects, only its partition's delivery waits (then fills).
   */
  reader(r: ReaderOptions, essential = true): Client {
    return this.open(r.name, { commandTimeout: this.o.commandTimeoutMs + r.blockMs, blockingTimeout: r.blockMs }, essential);
  }

  private open(name: string, extra: RedisOptions, essential = true): Client {
    const cap = this.o.reconnectMaxMs;
    const retry = (times: number) => backoffMs(times, { baseMs: 50, maxMs: cap });
    const node: RedisOptions = {
      // ioredis 6 speaks RESP3 by default; RESP2 keeps the reply shapes the bus was written and
      // measured against (and works with any Redis).
      protocol: 2,
      // Fail at once while disconnected (an append becomes an Error, never a late duplicate):
      // no offline queue, and nothing in flight at a disconnect is resent.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      connectionName: name,
      retryStrategy: retry,
      ...extra,
    };
    const t = this.o.target;
    const c =
      'url' in t
        ? new Redis(t.url, { ...node, lazyConnect: true })
        : new Cluster(t.cluster, {
            lazyConnect: true,
            enableOfflineQueue: false,
            enableAutoPipelining: extra.enableAutoPipelining ?? false,
            scaleReads: 'master',
            clusterRetryStrategy: retry,
            // A failover takes seconds: fail within ~0.5 s (UNAVAILABLE, 503) instead of
            // holding up every room's append of this worker; enough tries for a MOVED after it.
            retryDelayOnFailover: 100,
            retryDelayOnClusterDown: 100,
            retryDelayOnTryAgain: 100,
            maxRedirections: 5,
            slotsRefreshTimeout: 2000,
            redisOptions: { ...node, enableAutoPipelining: undefined },
          });
    let errors = 0;
    c.on('error', (err: Error) => {
      // Every failed reconnect attempt emits one; log the first of a streak loudly.
      if (errors++ === 0) this.o.log?.warn({ err, conn: name }, 'redis connection error');
      else this.o.log?.debug({ err, conn: name }, 'redis connection error');
    });
    c.on('ready', () => {
      errors = 0;
      this.update();
    });
    c.on('reconnecting', () => this.onReconnect());
    for (const ev of ['close', 'end', 'reconnecting', '+node', '-node']) c.on(ev, () => this.update());
    this.all.add(c);
    if (essential) this.essential.add(c);
    return defineScripts(c);
  }

  /** Connects (lazyConnect) and waits for ready. */
  async connect(c: Client): Promise<void> {
    await c.connect();
    this.update();
  }

  /** Closes one connection (a reader no longer needed). */
  drop(c: Client): void {
    this.all.delete(c);
    this.essential.delete(c);
    c.disconnect();
    this.update();
  }

  /** Disconnects everything: the worker has flushed its appends; a blocked XREAD need not finish. */
  close(): void {
    this.state = 'closed';
    for (const c of this.all) c.disconnect();
    this.all.clear();
    this.essential.clear();
  }

  private update(): void {
    if (this.state === 'closed') return;
    const ready = [...this.essential].every((c) => c.status === 'ready');
    const next: BusStatus = ready ? 'ready' : this.everReady ? 'reconnecting' : 'connecting';
    if (ready) this.everReady = true;
    if (next === this.state) return;
    this.state = next;
    this.onStatus(next);
  }
}

/** `host:port[,host:port…]` → seed nodes. */
export function parseClusterNodes(list: string): SeedNode[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const m = /^(.+):(\d{1,5})$/.exec(s);
      if (!m) throw new Error(`redis cluster node "${s}" is not host:port`);
      return { host: m[1]!, port: Number(m[2]) };
    });
}

/** The URL without its password, for logs and errors. */
export function redact(url: string): string {
  return url.replace(/\/\/([^@/]*):[^@/]*@/, '//$1:***@');
}
