// The supervisor's /metrics with many workers, one of them hung: every scrape answers within
// the collection timeout with every worker's series (the hung one's last answer, with
// roomcast_worker_up 0), and scrapes that come together share one collection, so retried or
// concurrent scrapes on a starved box do not pile up collections.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer } from './redis-server.js';
import { Supervisor, scrapeAdmin, startWithAdmin, destroyAll, dumpLogsOnFailure, metricValue, pollUntil } from './cluster-helpers.js';

const WORKERS = 8;
const ids = Array.from({ length: WORKERS }, (_v, i) => `w${i}`);
let redis: RedisServer | undefined;
let sup: Supervisor | undefined;
let admin = 0;
dumpLogsOnFailure(() => [sup]);

beforeAll(async () => {
  redis = await RedisServer.launch();
  ({ sup, admin } = await startWithAdmin(redis.url, WORKERS));
}, 90_000);

afterAll(async () => {
  await destroyAll(sup);
  await redis?.close();
}, 30_000);

const scrape = () => scrapeAdmin(admin);
const timeouts = (text: string) => metricValue(text, 'roomcast_metrics_collect_timeouts_total', { worker: 'w7' });

describe(`/metrics of a supervisor with ${WORKERS} workers`, () => {
  it('one hung worker: concurrent scrapes share one collection and each reports all workers', async () => {
    await pollUntil('every worker answers', async () => {
      const t = await scrape();
      return ids.every((worker) => metricValue(t, 'roomcast_worker_up', { worker }) === 1);
    }, 30_000);
    const pid = sup!.workerPids().get('w7')!;
    const before = timeouts(await scrape());
    process.kill(pid, 'SIGSTOP');
    try {
      const started = Date.now();
      const texts = await Promise.all(Array.from({ length: 6 }, scrape));
      expect(Date.now() - started, 'the scrapes wait about one collection timeout').toBeLessThan(5000);
      for (const text of texts) {
        expect(metricValue(text, 'roomcast_worker_up', { worker: 'w7' })).toBe(0);
        for (const worker of ids) expect(metricValue(text, 'roomcast_connections', { worker }), worker).toBe(0);
        for (const worker of ids.slice(0, -1)) expect(metricValue(text, 'roomcast_worker_up', { worker }), worker).toBe(1);
        // One collection timed out for the six scrapes (one each would count six).
        expect(timeouts(text)).toBe(before! + 1);
      }
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await pollUntil('w7 answers again', async () => metricValue(await scrape(), 'roomcast_worker_up', { worker: 'w7' }) === 1, 10_000);
  }, 60_000);
});
