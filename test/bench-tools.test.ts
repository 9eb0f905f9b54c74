// The big-room bench's own logic: the ceiling search must locate a sustained maximum within
// one step factor, and its lean poster must read keep-alive answers right. No timing asserted.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

interface Row {
  rate: number;
  open: number;
  ok: boolean;
  note?: string;
  deliveredRatio?: number | null;
  deliveredMsgsPerSec: number;
  sentPerSec: number;
  stepMissed: number;
  tailBehindMembers: number;
  quiet: boolean;
  latencyMs: { p99: number | null };
  postBehind: number;
  postRtt: { p50: number | null };
  postStatus: Record<string, number>;
  senderCpuPct: number;
}
interface Summary { rate: number | null; firstFailAbove: number | null; located: boolean; holes: number[] }
interface Plan { next(steps: Row[], stoppedAt?: unknown): number | null; judge(row: Row): void; summary(steps: Row[]): Summary }
interface CeilingModule {
  ceilingPlan(o: { start: number; factor?: number; minDelivered: number; maxP99Ms?: number; maxRate?: number; maxSteps?: number }): Plan;
}
interface Merged { steps: (Row & { runs: { p99: number | null; ok: boolean }[] })[]; stoppedAt?: { rate: number }; repeats: number; serverRssPerMemberKiB?: number }
interface RepeatsModule {
  mergeRuns(runs: { steps: Row[]; stoppedAt?: { rate: number }; serverRssPerMemberKiB?: number }[]): Merged;
  upperMedian(v: number[]): number;
  lowerMedian(v: number[]): number;
}
type Answer = (err: Error | null, status?: number, body?: string) => void;
interface RawModule {
  RawPool: new (o: { host: string; port: number; max: number; timeoutMs?: number }) => {
    post(path: string, headers: string, body: string, cb: Answer): boolean;
    close(): void;
  };
}

// bench/ is plain JavaScript without type declarations; the shapes above are what it exports.
const load = async <T>(path: string): Promise<T> => (await import(path)) as T;
const { ceilingPlan } = await load<CeilingModule>('../bench/lib/ceiling.mjs');
const { mergeRuns, upperMedian, lowerMedian } = await load<RepeatsModule>('../bench/lib/repeats.mjs');
const { RawPool } = await load<RawModule>('../bench/lib/raw-http.mjs');

const MEMBERS = 1000;

/** A measured row for `rate` as a server with the given capacity (msgs/s in) would give it. */
function row(rate: number, capacity: number, over: Partial<Row> = {}): Row {
  const taken = Math.min(rate, capacity);
  return {
    rate, open: MEMBERS, ok: true, deliveredMsgsPerSec: taken * MEMBERS, sentPerSec: rate, stepMissed: 0, tailBehindMembers: 0, quiet: true,
    latencyMs: { p99: rate <= capacity ? 100 : 5000 }, postBehind: 0, postRtt: { p50: 5 }, postStatus: { 202: rate }, senderCpuPct: 10, ...over,
  };
}

/** Runs a plan against a simulated server; `blips` are rates measured as unsustained by chance. */
function search(start: number, capacity: number, blips: number[] = []) {
  const plan = ceilingPlan({ start, factor: 1.25, minDelivered: 0.95, maxP99Ms: 2000, maxRate: 100_000, maxSteps: 40 });
  const steps: Row[] = [];
  for (let rate = plan.next(steps); rate !== null; rate = plan.next(steps)) {
    const r = row(rate, blips.includes(rate) ? 0 : capacity);
    plan.judge(r);
    steps.push(r);
  }
  return { steps, summary: plan.summary(steps) };
}

describe('big-room ceiling search', () => {
  it('rises ×1.25 until a failure is confirmed and locates the ceiling within 25%', () => {
    const { steps, summary } = search(222, 700);
    expect(steps.map((s) => s.rate)).toEqual([222, 278, 347, 434, 542, 677, 847, 1059]);
    expect(summary).toMatchObject({ rate: 677, firstFailAbove: 847, located: true, holes: [] });
    expect((summary.firstFailAbove ?? 0) / (summary.rate ?? 1)).toBeLessThanOrEqual(1.25 + 0.01);
  });

  it('goes on past a failure the next rate does not confirm, and reports it as a hole', () => {
    const { summary } = search(222, 700, [347]);
    expect(summary).toMatchObject({ rate: 677, firstFailAbove: 847, located: true, holes: [347] });
  });

  it('steps down when even the first rate is not sustained', () => {
    const { steps, summary } = search(222, 100);
    expect(steps.map((s) => s.rate)).toEqual([222, 178, 142, 114, 91]);
    expect(summary).toMatchObject({ rate: 91, firstFailAbove: 114, located: true });
  });

  it('judges delivered share, misses, p99 and posts taken', () => {
    const plan = ceilingPlan({ start: 100, minDelivered: 0.95, maxP99Ms: 2000 });
    const cases: [Partial<Row>, string | null][] = [
      [{}, null],
      [{ deliveredMsgsPerSec: 0.9 * 100 * MEMBERS }, 'delivered ×0.9 of offered'],
      [{ stepMissed: 3 }, 'misses 3'],
      [{ quiet: false }, 'backlog'],
      [{ latencyMs: { p99: 2500 } }, 'p99 2500 ms over 2000 ms'],
      [{ sentPerSec: 80, postBehind: 400, postRtt: { p50: 900 } }, 'in-flight cap reached, posts answered in p50 900 ms'],
    ];
    for (const [over, reason] of cases) {
      const r = row(100, 1000, over);
      plan.judge(r);
      expect(r.ok, JSON.stringify(over)).toBe(reason === null);
      if (reason) expect(r.note).toContain(reason);
    }
  });
});

describe('big-room repeated runs', () => {
  it('takes each side\'s doubt against it: upper median p99, lower median delivered', () => {
    expect(upperMedian([3, 1, 2])).toBe(2);
    expect(upperMedian([1, 4])).toBe(4);
    expect(lowerMedian([1, 4])).toBe(1);
    expect(lowerMedian([5])).toBe(5);
  });

  it('merges runs rate by rate: median p99 and delivered, sustained by majority, in rate order', () => {
    const p99 = (v: number) => ({ latencyMs: { p99: v } });
    const merged = mergeRuns([
      { steps: [row(100, 1000, p99(90)), row(125, 1000, { ...p99(300), ok: false, deliveredMsgsPerSec: 80_000 })], serverRssPerMemberKiB: 1.4 },
      { steps: [row(100, 1000, p99(200)), row(125, 1000, p99(110)), row(156, 1000, { ...p99(900), ok: false })], serverRssPerMemberKiB: 1.2 },
      { steps: [row(125, 1000, p99(120)), row(100, 1000, p99(100))], serverRssPerMemberKiB: 1.3 },
    ]);
    expect(merged.repeats).toBe(3);
    expect(merged.steps.map((s) => [s.rate, s.latencyMs.p99, s.ok])).toEqual([
      [100, 100, true],
      [125, 120, true], // one failed run of three
      [156, 900, false], // measured once, failed
    ]);
    expect(merged.steps[1]!.deliveredMsgsPerSec).toBe(125 * MEMBERS); // lower median of 80k, 125k, 125k
    expect(merged.steps[1]!.runs.map((r) => r.ok)).toEqual([false, true, true]);
    expect(merged.serverRssPerMemberKiB).toBe(1.3);
  });

  it('fails a rate sustained in only half the runs, and keeps a stop only when most runs stopped', () => {
    const merged = mergeRuns([
      { steps: [row(100, 1000), row(125, 1000, { ok: false })], stoppedAt: { rate: 156 } },
      { steps: [row(100, 1000), row(125, 1000)] },
    ]);
    expect(merged.steps.map((s) => s.ok)).toEqual([true, false]);
    expect(merged.stoppedAt).toBeUndefined();
  });
});

describe('big-room lean poster', () => {
  let server: Server;
  let port = 0;
  const seen: { url?: string; auth?: string; body: string }[] = [];
  let sockets = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ url: req.url, auth: req.headers.authorization, body });
        if (body === 'close') res.writeHead(202, { Connection: 'close', 'Content-Length': 9 }).end('{"seq":1}');
        else if (body === 'chunked') res.writeHead(200).end(JSON.stringify({ shown: false }));
        else res.writeHead(202, { 'Content-Type': 'application/json', 'Content-Length': 9 }).end('{"seq":2}');
      });
    });
    server.on('connection', () => sockets++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const post = (pool: InstanceType<RawModule['RawPool']>, body: string) =>
    new Promise<{ status?: number; body?: string; err?: string }>((resolve) => {
      const sent = pool.post('/v1/rooms/big/messages', 'Authorization: Bearer k\r\n', body, (err, status, text) => resolve(err ? { err: err.message } : { status, body: text }));
      if (!sent) resolve({ err: 'busy' });
    });

  it('posts over one reused keep-alive connection, reads Content-Length and chunked answers', async () => {
    const pool = new RawPool({ host: '127.0.0.1', port, max: 1 });
    const before = sockets;
    expect(await post(pool, '{"kind":"chat"}')).toEqual({ status: 202, body: '{"seq":2}' });
    const chunked = await post(pool, 'chunked');
    expect(chunked.status).toBe(200);
    expect(chunked.body).toContain('{"shown":false}'); // chunk framing kept: the sender only looks for this
    expect(await post(pool, '{"kind":"chat"}')).toEqual({ status: 202, body: '{"seq":2}' });
    expect(sockets - before).toBe(1);
    expect(seen.at(-1)).toEqual({ url: '/v1/rooms/big/messages', auth: 'Bearer k', body: '{"kind":"chat"}' });
    pool.close();
  });

  it('refuses a post beyond its connections, and replaces a connection the server closed', async () => {
    const pool = new RawPool({ host: '127.0.0.1', port, max: 1 });
    const first = post(pool, 'close');
    expect(await post(pool, 'x')).toEqual({ err: 'busy' });
    expect(await first).toEqual({ status: 202, body: '{"seq":1}' });
    await new Promise((r) => setTimeout(r, 50)); // the server's FIN arrives
    expect(await post(pool, '{"kind":"chat"}')).toEqual({ status: 202, body: '{"seq":2}' });
    pool.close();
  });
});
