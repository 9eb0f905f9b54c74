// A worker process of the supervisor: waits for its config over IPC, runs one roomcast node
// on the shared port with the Redis bus (built by the node), and drains when told to (or when orphaned).
import { hostname } from 'node:os';
import { Registry } from 'prom-client';
import { createLogger } from '../log.js';
import { startNode, type RoomcastNode } from '../node.js';
import type { ToSupervisor, ToWorker } from './ipc.js';
import { WorkerUsers } from './user-counts.js';
import type { LocalCount } from '../engine/users.js';

const send = (m: ToSupervisor) => process.send?.(m);
let node: RoomcastNode | undefined;
let seq = 0;
const waiting = new Map<number, (text: string) => void>();
/** This worker's sockets per user, shared with the node's other workers via the supervisor (made with the node). */
let users: WorkerUsers | undefined;
// Counts still change while an orphaned worker drains: nobody to tell then.
const userPresence = (local: LocalCount) => (users = new WorkerUsers((m) => void (process.connected && send(m)), local));

/** GET /metrics on any worker answers with the node-wide aggregate from the supervisor. */
function nodeMetrics(): Promise<string> {
  const id = ++seq;
  return new Promise((resolve) => {
    waiting.set(id, resolve);
    send({ type: 'metrics?', id });
  });
}

async function drain(): Promise<void> {
  await node?.stop('node draining');
  process.exit(0);
}

process.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'start': {
      const log = createLogger(m.config.logLevel, { worker: m.workerId });
      const registry = new Registry();
      registry.setDefaultLabels({ worker: m.workerId });
      // welcome.node names the worker too, so a member knows which process serves it.
      const config = Object.freeze({ ...m.config, nodeId: `${m.config.nodeId ?? hostname()}/${m.workerId}` });
      void startNode(config, { log, registry, metricsText: nodeMetrics, devSecret: m.devSecret, supervised: true, users: userPresence }).then(
        (n) => {
          node = n;
          send({ type: 'ready', port: n.port, presenceId: n.presence.presenceId });
        },
        (err: unknown) => {
          log.fatal({ err }, 'worker failed to start');
          process.exit(1);
        },
      );
      return;
    }
    case 'drain':
      void drain();
      return;
    case 'collect':
      if (node) void node.registry.getMetricsAsJSON().then((metrics) => send({ type: 'collected', id: m.id, metrics }));
      return;
    case 'probe':
      send({ type: 'probed', id: m.id, ready: node?.engine.ready ?? false });
      return;
    case 'metrics':
      waiting.get(m.id)?.(m.text);
      waiting.delete(m.id);
      return;
    case 'forget':
      void node?.presence.forgetWorkers(m.presenceIds);
      return;
    case 'user-others':
      users?.others(m);
      return;
  }
});

// The supervisor is gone: nobody will restart or drain us, so drain ourselves.
process.on('disconnect', () => void drain());
process.on('SIGTERM', () => void drain());
process.on('SIGINT', () => undefined); // the supervisor relays Ctrl-C as a drain
