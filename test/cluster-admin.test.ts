// --admin-port in a cluster: the supervisor serves /metrics (the node-wide aggregate),
// /healthz and /readyz on its own listener, and the workers' shared public port no longer
// answers them. A hung worker (SIGSTOP) shows as roomcast_worker_up 0 with a counted
// collection timeout, its series stay (its last answer), and /readyz turns 503.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer } from './redis-server.js';
import { Supervisor, scrapeAdmin, startWithAdmin, allStatus, destroyAll, dumpLogsOnFailure, http, metricValue, pollUntil } from './cluster-helpers.js';

let redis: RedisServer | undefined;
let sup: Supervisor | undefined;
let admin = 0;
dumpLogsOnFailure(() => [sup]);

beforeAll(async () => {
  redis = await RedisServer.launch();
  ({ sup, admin } = await startWithAdmin(redis.url));
}, 60_000);

afterAll(async () => {
  await destroyAll(sup);
  await redis?.close();
}, 20_000);

const scrape = () => scrapeAdmin(admin);

describe('--admin-port with --workers 2', () => {
  it('the supervisor answers the ops routes on the admin port; the public port does not', async () => {
    expect(admin).toBeGreaterThan(0);
    expect(admin).not.toBe(sup!.port);
    for (const path of ['/metrics', '/healthz', '/readyz']) expect(await allStatus(sup!.port, path, 404, 6), `public ${path}`).toBe(true);
    expect((await http(admin, 'GET', '/healthz', undefined, false)).status).toBe(200);
    await pollUntil('readyz 200', async () => (await http(admin, 'GET', '/readyz', undefined, false)).status === 200, 10_000);
    const text = await pollUntil('both workers in the aggregate', async () => {
      const t = await scrape();
      return metricValue(t, 'roomcast_worker_up', { worker: 'w0' }) === 1 && metricValue(t, 'roomcast_worker_up', { worker: 'w1' }) === 1 && t;
    }, 10_000);
    for (const worker of ['w0', 'w1']) {
      expect(metricValue(text, 'roomcast_connections', { worker }), worker).toBe(0);
      expect(metricValue(text, 'roomcast_metrics_collect_timeouts_total', { worker }), worker).toBe(0);
    }
  });

  it('a hung worker: worker_up 0, a counted timeout, its last series kept, /readyz 503; back to 1 when it resumes', async () => {
    const pid = sup!.workerPids().get('w1')!;
    process.kill(pid, 'SIGSTOP');
    try {
      const started = Date.now();
      const text = await scrape();
      expect(Date.now() - started, 'the scrape waits at most the collection timeout').toBeLessThan(4000);
      expect(metricValue(text, 'roomcast_worker_up', { worker: 'w1' })).toBe(0);
      expect(metricValue(text, 'roomcast_worker_up', { worker: 'w0' })).toBe(1);
      expect(metricValue(text, 'roomcast_metrics_collect_timeouts_total', { worker: 'w1' })).toBeGreaterThanOrEqual(1);
      expect(metricValue(text, 'roomcast_connections', { worker: 'w1' }), "the hung worker's last series").toBe(0);
      expect((await http(admin, 'GET', '/readyz', undefined, false)).status).toBe(503);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await pollUntil('w1 answers again', async () => metricValue(await scrape(), 'roomcast_worker_up', { worker: 'w1' }) === 1, 10_000);
    await pollUntil('readyz 200 again', async () => (await http(admin, 'GET', '/readyz', undefined, false)).status === 200, 10_000);
  }, 30_000);
});
