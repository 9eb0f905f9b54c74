// The tick loop's scheduling on a fake clock: it sleeps (no timer at all) while nothing is
// queued, a wake runs the next tick one tick later, work left over (chat under review) or a
// wake during a tick keeps it going at the cadence, and stretched ticks still stretch.
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TALKING } from '../src/gateway/member-talk.js';
import { Ticker, TICK_SHARE } from '../src/tick/ticker.js';

const TICK = 50;

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
});
afterEach(() => {
  vi.useRealTimers();
});

function ticker(
  run: () => Promise<boolean> = async () => false,
  workMs: number | (() => number) = 0,
  takeBusyMs?: () => number,
  loopBusy?: () => number,
  talking?: () => number,
) {
  const ticks: number[] = [];
  const t = new Ticker({
    tickMs: TICK,
    maxTickMs: 1000,
    run: async () => {
      ticks.push(performance.now());
      const work = typeof workMs === 'number' ? workMs : workMs();
      if (work > 0) vi.advanceTimersByTime(work); // the tick's work takes this long
      return run();
    },
    onError: (err) => {
      throw err;
    },
    takeBusyMs,
    loopBusy,
    talking,
  });
  return { t, ticks };
}

describe('Ticker', () => {
  it('schedules no timer while nothing was queued', async () => {
    const { t, ticks } = ticker();
    t.start();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(5000);
    expect(ticks).toHaveLength(0);
    expect(t.sleeping).toBe(true);
    await t.stop();
  });

  it('runs the first tick one tick after a wake, then sleeps again', async () => {
    const { t, ticks } = ticker();
    t.start();
    await vi.advanceTimersByTimeAsync(1000);
    const woke = performance.now();
    t.wake();
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(TICK - 1);
    expect(ticks).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(ticks).toEqual([woke + TICK]);
    await vi.advanceTimersByTimeAsync(2000);
    expect(ticks).toHaveLength(1);
    expect(t.sleeping).toBe(true);
    expect(vi.getTimerCount()).toBe(0);

    // more queued while the tick was due: one more (empty) tick at the cadence, then sleep
    const again = performance.now();
    t.wake();
    await vi.advanceTimersByTimeAsync(10);
    t.wake();
    t.wake();
    await vi.advanceTimersByTimeAsync(2000);
    expect(ticks.slice(1)).toEqual([again + TICK, again + 2 * TICK]);
    expect(t.sleeping).toBe(true);
    await t.stop();
  });

  it('keeps the cadence while woken during ticks or while work is left', async () => {
    let left = 3;
    const { t, ticks } = ticker(async () => left-- > 0);
    t.start();
    t.wake();
    await vi.advanceTimersByTimeAsync(TICK * 10);
    // the woken tick, then 3 more with work left; the last of those said "nothing left"
    expect(ticks).toHaveLength(4);
    expect(ticks[1]! - ticks[0]!).toBe(TICK);
    expect(t.sleeping).toBe(true);

    // a wake during each tick (entries read from the bus) keeps it ticking
    const stream = setInterval(() => t.wake(), TICK / 2);
    t.wake();
    await vi.advanceTimersByTimeAsync(TICK * 10);
    clearInterval(stream);
    expect(ticks.length).toBeGreaterThanOrEqual(13);
    await vi.advanceTimersByTimeAsync(TICK * 4);
    expect(t.sleeping).toBe(true);
    await t.stop();
  });

  it('stretches a tick whose work outlasts it, and relaxes after idle', async () => {
    let left = 3; // with the loop to itself the next tick follows at once: a few, then none
    const { t } = ticker(async () => left-- > 0, 200);
    t.start();
    t.wake();
    await vi.advanceTimersByTimeAsync(1000);
    expect(t.effectiveMs).toBeGreaterThanOrEqual(200 / TICK_SHARE);
    await t.stop();

    const idle = ticker(async () => false);
    idle.t.start();
    idle.t.wake();
    await vi.advanceTimersByTimeAsync(TICK);
    expect(idle.t.effectiveMs).toBe(TICK);
    await idle.t.stop();
  });

  it('keeps its cadence from when a tick was due, however late the loop got to it', async () => {
    // The loop's clock: `lost` ms went to socket writes while a tick was due (fake timers fire
    // every timer on time, so the lost time is added to the clock the ticker reads).
    let lost = 0;
    const now = () => performance.now() + lost;
    const ticks: number[] = [];
    let traffic = true;
    const t = new Ticker({
      tickMs: TICK,
      maxTickMs: 1000,
      now,
      run: async () => {
        ticks.push(now());
        return traffic;
      },
      onError: (err) => {
        throw err;
      },
    });
    t.start();
    t.wake();
    await vi.advanceTimersByTimeAsync(TICK);
    setTimeout(() => void (lost = 20), TICK - 1); // the second tick starts 20 ms late
    await vi.advanceTimersByTimeAsync(TICK * 4);
    traffic = false;
    await vi.advanceTimersByTimeAsync(TICK * 2);
    const at = ticks.map((x) => x - ticks[0]!);
    expect(at[1]).toBe(TICK + 20); // the late one
    expect(at.slice(2, 4)).toEqual([2 * TICK, 3 * TICK]); // no drift after it
    await t.stop();
  });

  it('decays a stretched tick over a sleep', async () => {
    let work = 200;
    const busy = new Ticker({
      tickMs: TICK,
      maxTickMs: 1000,
      run: async () => {
        vi.advanceTimersByTime(work);
        return false;
      },
      onError: () => {},
    });
    busy.start();
    busy.wake();
    await vi.advanceTimersByTimeAsync(TICK + 1);
    expect(busy.effectiveMs).toBe(200 / TICK_SHARE);
    expect(busy.sleeping).toBe(true);
    work = 0;
    await vi.advanceTimersByTimeAsync(60_000);
    busy.wake();
    await vi.advanceTimersByTimeAsync(TICK);
    expect(busy.effectiveMs).toBeLessThan(TICK + 1);
    await busy.stop();
  });

  it('stretches for the fan-out done outside the tick while the members talk, counting a late start once', async () => {
    const run = async (talk: number) => {
      let fanout = 0;
      const { t } = ticker(
        async () => true,
        0,
        () => {
          const ms = fanout;
          fanout = 0;
          return ms;
        },
        () => 0,
        () => talk,
      );
      t.start();
      t.wake();
      fanout = 100; // an append completed and its frames were written between two ticks
      await vi.advanceTimersByTimeAsync(TICK);
      await t.stop();
      return t.effectiveMs;
    };
    expect(await run(1)).toBeGreaterThanOrEqual(100 / TICK_SHARE);
    // A room that only listens: its frames follow its passes, the tick stays as configured.
    expect(await run(0)).toBe(TICK);
  });

  it('stretches further while other work (ingress) keeps the loop busy, and further while members talk', async () => {
    const run = async (talk: number) => {
      let fanout = 0;
      const take = () => {
        const ms = fanout;
        fanout = 0;
        return ms;
      };
      let busy = 0;
      const { t } = ticker(async () => true, 0, take, () => busy, () => talk);
      t.start();
      t.wake();
      await vi.advanceTimersByTimeAsync(TICK); // the first tick: no interval to measure yet
      fanout = 60; // each tick's frames take 60 ms
      await vi.advanceTimersByTimeAsync(TICK);
      const quiet = t.effectiveMs;
      // Ingress keeps the loop 40% busy besides.
      for (let i = 0; i < 3; i++) {
        fanout = 60;
        busy = 0.4 + 60 / t.effectiveMs;
        await vi.advanceTimersByTimeAsync(t.effectiveMs);
      }
      await t.stop();
      return { quiet, loaded: t.effectiveMs };
    };
    // Members talking a little (a quarter of a storm): the fan-out takes what ingress leaves,
    // 1 - 0.7 × 0.25 - 1.25 × 0.4 = 0.325, against 0.825 on a quiet loop.
    const talk = await run(TALKING);
    expect(talk.quiet).toBeCloseTo(60 / (TICK_SHARE - 0.7 * TALKING), 0);
    expect(talk.loaded).toBeGreaterThanOrEqual(60 / 0.325 - 1);
    expect(talk.loaded).toBeLessThan(250);
    // Members storming: twice their share and a reserve, 1 - 0.7 - 2 × 0.4 < 0: the storm's
    // floor, 0.07 (the quiet floor, 0.1, would give 600 ms).
    const storm = await run(1);
    expect(storm.loaded).toBeGreaterThanOrEqual(60 / 0.07 - 5);
    // Only listening, ingress or not: the configured tick.
    const listening = await run(0);
    expect([listening.quiet, listening.loaded]).toEqual([TICK, TICK]);
  });

  it('runs a high-priority message within one configured tick while the tick is stretched', async () => {
    let fanout = 300; // the first tick's frames take 300 ms after it
    const take = () => {
      const ms = fanout;
      fanout = 0;
      return ms;
    };
    // traffic goes on; the members talk (a quarter of a storm), so the fan-out stretches the tick
    const { t, ticks } = ticker(async () => true, 0, take, () => 0, () => TALKING);
    t.start();
    t.wake();
    await vi.advanceTimersByTimeAsync(TICK);
    expect(t.effectiveMs).toBeGreaterThanOrEqual(300 / TICK_SHARE);
    const first = ticks[0]!;
    // chat: the stretched cadence holds (the next tick is due 300 ms after the first was)
    t.wake();
    await vi.advanceTimersByTimeAsync(10);
    expect(ticks).toHaveLength(1);
    // a gift: the next tick comes within one configured tick
    const urgentAt = performance.now();
    t.wake(true);
    await vi.advanceTimersByTimeAsync(TICK);
    expect(ticks).toHaveLength(2);
    expect(ticks[1]! - urgentAt).toBeLessThanOrEqual(TICK);
    expect(ticks[1]! - first).toBeLessThan(300);
    await t.stop();
  });

  it('lets a high-priority message wait up to half the stretched tick while the members storm', async () => {
    let fanout = 300; // each tick's frames take 300 ms: with the storm's reserve, a 1,000 ms tick
    const take = () => {
      const ms = fanout;
      fanout = 0;
      return ms;
    };
    const { t, ticks } = ticker(async () => true, 0, take, () => 0, () => 1);
    t.start();
    t.wake();
    await vi.advanceTimersByTimeAsync(TICK);
    expect(t.effectiveMs).toBeCloseTo(1000);
    // A gift: not within one configured tick (a tick, and a frame on every worker, per gift),
    // but within half the stretched one.
    const urgentAt = performance.now();
    t.wake(true);
    await vi.advanceTimersByTimeAsync(TICK * 2);
    expect(ticks).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(500);
    expect(ticks).toHaveLength(2);
    expect(ticks[1]! - urgentAt).toBeLessThanOrEqual(500);
    await t.stop();
  });
});

describe('Ticker on the real event loop', () => {
  it("runs a tick after the loop's poll: a request read on the timer's turn is in it", async () => {
    vi.useRealTimers();
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    const [conn] = (await once(server, 'connection')) as [Socket];
    await once(client, 'connect');
    let read = false;
    conn.on('data', () => void (read = true));
    const seen: boolean[] = [];
    const t = new Ticker({
      tickMs: 20,
      maxTickMs: 1000,
      run: async () => {
        seen.push(read);
        return false;
      },
      onError: (err) => {
        throw err;
      },
    });
    t.start();
    t.wake(); // the tick is due in 20 ms
    // A request arrives at the end of a turn busy past the tick's time (a fan-out pass): the
    // next turn starts with the overdue timer, and its poll reads the request.
    setTimeout(() => {
      setImmediate(() => {
        client.write('post');
        for (const until = performance.now() + 40; performance.now() < until; );
      });
    }, 5);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await t.stop();
    client.destroy();
    conn.destroy();
    server.close();
    expect(seen).toEqual([true]);
  });
});
