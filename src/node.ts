// The composition root: builds and wires one worker (bus, engine, gateway, routes) and owns
// its start and ordered shutdown.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { Gauge, Registry } from 'prom-client';
import { createVerifier } from './auth/tokens.js';
import type { Bus, Presence } from './bus/bus.js';
import { createBus } from './bus/create.js';
import type { Config } from './config/schema.js';
import { listenHost } from './config/load.js';
import { apiRoutes } from './api/routes.js';
import { devRoutes } from './dev/routes.js';
import { createBlocklist } from './review/blocklist.js';
import { createWebhookReviewer } from './review/webhook.js';
import { Engine } from './engine/engine.js';
import { createEvents } from './events/create.js';
import { Gateway } from './gateway/server.js';
import { json, type Route } from './gateway/http.js';
import { startAdminServer, type AdminServer } from './gateway/admin.js';
import { createLogger } from './log.js';
import { busEvents, createMetrics } from './metrics/metrics.js';
import { loopBusySince } from './metrics/event-loop.js';
import { startYoungGenTrim } from './util/young-gen-trim.js';
import type { UserPresenceFactory } from './engine/users.js';

export interface RoomcastNode {
  readonly port: number;
  /** The --admin-port listener's port, when this process serves one. */
  readonly adminPort?: number;
  readonly config: Config;
  readonly engine: Engine;
  /** This worker's member-count writer, and how to drop a dead sibling's counts at once. */
  readonly presence: Pick<Presence, 'presenceId' | 'forgetWorkers'>;
  readonly registry: Registry;
  /** The secret tokens are verified with (generated in dev mode). */
  readonly secret: string;
  readonly devMode: boolean;
  /** Drain (bye, flush, close) and stop. Idempotent. */
  stop(reason?: string): Promise<void>;
}

export interface NodeDeps {
  log?: Logger;
  registry?: Registry;
  bus?: Bus;
  /** Text for GET /metrics (in a cluster: the node-wide aggregate); default: this registry. */
  metricsText?: () => Promise<string>;
  /** Dev mode's token secret, shared by all workers of a node (default: random). */
  devSecret?: string;
  /** A cluster worker: with --admin-port, the supervisor serves the ops routes, not this worker. */
  supervised?: boolean;
  /** Node-wide sockets per user (a supervised worker's view); default: this worker alone. */
  users?: UserPresenceFactory;
}

const HTTP_BODY_LIMIT = 64 * 1024;

export async function startNode(config: Config, deps: NodeDeps = {}): Promise<RoomcastNode> {
  const log = deps.log ?? createLogger(config.logLevel);
  const registry = deps.registry ?? new Registry();
  const metrics = createMetrics(registry);
  const devMode = config.secret === null;
  const secret = config.secret ?? deps.devSecret ?? randomBytes(32).toString('hex');
  const host = listenHost(config);
  if (devMode) {
    log.warn('DEV MODE: no --secret configured. Anyone can mint tokens at GET /dev/token. Never run this in production.');
    if (config.host !== null) {
      log.warn(`DEV MODE ON --host ${config.host}: anyone who can reach this address can mint moderator tokens and use the /v1 API. Set --secret and --api-key.`);
    }
  }
  new Gauge({ name: 'roomcast_dev_mode', help: '1 while the node runs in dev mode (no secret)', registers: [registry] }).set(devMode ? 1 : 0);
  const nodeId = config.nodeId ?? hostname();
  let paceMs = () => config.tickMs;
  let nudgeWaitMs = () => 0;
  const bus = deps.bus ?? createBus(config, nodeId, { log, events: busEvents(metrics), paceMs: () => paceMs(), nudgeWaitMs: () => nudgeWaitMs() });
  const verifier = createVerifier(secret);
  const gateway = new Gateway({
    host,
    port: config.port,
    verifier,
    allowGuests: config.allowGuests,
    guestRooms: config.guestRooms,
    connectRate: config.connectRate,
    connectBurst: config.connectBurst,
    trustProxy: config.trustProxy,
    maxFrameBytes: config.maxFrameBytes,
    maxHttpBodyBytes: HTTP_BODY_LIMIT,
    idleTimeoutSec: config.idleTimeoutSec,
    maxBackpressure: config.maxBackpressure,
    compressThreshold: config.compressThreshold,
    fanoutShardMembers: config.fanoutShardMembers,
    fanoutSliceMs: config.fanoutSliceMs,
    rideMs: () => paceMs(),
    metrics,
    log,
  });
  const review = config.reviewUrl
    ? createWebhookReviewer({ url: config.reviewUrl, timeoutMs: config.reviewTimeoutMs, failOpen: config.reviewFailOpen, calls: metrics.reviewCalls, log })
    : undefined;
  const prefilter = createBlocklist(config.blocklist);
  const apiKey = config.apiKey ?? (devMode ? 'dev' : null);
  const members = (room: string): number => engine.membersOf(room);
  const events = createEvents(config, { node: nodeId, apiKey, metrics, log, members, othersMembers: (room) => bus.members(room) });
  const engine = new Engine({ config, bus, publisher: gateway, metrics, log, nodeId, review, prefilter, verifier, users: deps.users, events, talking: () => gateway.talking });
  paceMs = () => engine.effectiveTickMs;
  nudgeWaitMs = () => engine.stormWaitMs;
  if (devMode && config.apiKey === null) log.warn('DEV MODE: the /v1 API key is "dev".');
  if (apiKey === null) log.warn('no --api-key configured: every /v1 route answers 401');
  for (const r of apiRoutes({ control: engine, log: bus, apiKey, apiRate: config.apiRate })) gateway.route(r);

  const ops: Route[] = [
    { method: 'get', pattern: '/healthz', handler: () => json(200, { status: 'ok' }) },
    { method: 'get', pattern: '/readyz', handler: () => (engine.ready ? json(200, { ready: true }) : json(503, { ready: false })) },
    {
      method: 'get',
      pattern: '/metrics',
      handler: async () => ({
        status: 200,
        body: await (deps.metricsText ?? (() => registry.metrics()))(),
        contentType: registry.contentType,
      }),
    },
  ];
  // With --admin-port the ops routes live on their own listener only.
  if (config.adminPort === null) for (const r of ops) gateway.route(r);
  if (devMode) for (const r of devRoutes(secret)) gateway.route(r);

  await engine.start();
  const port = await gateway.listen(engine);
  const stopTrim = startYoungGenTrim({
    busySince: loopBusySince(),
    onTrim: (before, after) => log.debug({ beforeKiB: before >> 10, afterKiB: after >> 10 }, 'young generation given back'),
  });
  let admin: AdminServer | undefined;
  if (config.adminPort !== null && !deps.supervised) {
    const count = (route: string, status: number) => metrics.httpRequests.inc({ route, status: String(status) });
    admin = await startAdminServer(config.adminHost, config.adminPort, ops, count);
    log.info({ port: admin.port, host: config.adminHost }, 'admin listener (metrics, healthz, readyz)');
  }
  log.info({ port, host, node: nodeId, bus: bus.kind, tickMs: config.tickMs }, 'roomcast worker listening');

  let stopping: Promise<void> | undefined;
  return {
    port,
    adminPort: admin?.port,
    config,
    engine,
    presence: bus,
    registry,
    secret,
    devMode,
    stop(reason = 'draining') {
      stopping ??= (async () => {
        gateway.stopListening();
        stopTrim();
        await engine.drain(reason);
        gateway.closeAll();
        await admin?.close();
        log.info('roomcast worker stopped');
      })();
      return stopping;
    },
  };
}
