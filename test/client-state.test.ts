// Unit tests of the SDK's connection state machine: fake transport, fake clock.
import { describe, expect, it } from 'vitest';
import { connect, type ConnectOptions } from '../src/client/index.js';
import { FakeClock, FakeTransport, flush, recordEvents } from '../src/client/testing.js';

function jwt(claims: Record<string, unknown>): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}.sig`;
}

function setup(opts: Partial<ConnectOptions> & { clock?: FakeClock } = {}) {
  const clock = opts.clock ?? new FakeClock();
  const t = new FakeTransport();
  const rnd = { value: 0.5 };
  const rc = connect({ url: 'ws://h1:8080/ws', transport: t.factory, random: () => rnd.value, ...opts, clock });
  return { clock, t, rc, rnd, ...recordEvents(rc) };
}

/** Waits for the client's pending attempt, then accepts it. */
async function open(t: FakeTransport, welcome: Record<string, unknown> = {}) {
  await flush();
  t.last.accept(welcome);
  await flush();
  return t.last;
}

const delays = (of: ReturnType<typeof setup>['of']) =>
  of<{ state: string; delayMs?: number }>('state')
    .filter((s) => s.state === 'reconnecting')
    .map((s) => s.delayMs);

describe('connecting', () => {
  it('opens a socket with the token and options in the query, then reports open', async () => {
    const { t, rc, of } = setup({ url: 'https://h1.example/', token: 'SECRET123', compress: true });
    expect(rc.state).toBe('connecting');
    const s = await open(t, { sid: 'abc', uid: 'alice', node: 'n9', hb: 30 });
    const u = new URL(s.url);
    expect(u.protocol).toBe('wss:');
    expect(u.pathname).toBe('/ws');
    expect(u.searchParams.get('token')).toBe('SECRET123');
    expect(u.searchParams.get('compress')).toBe('deflate');
    expect(s.binaryType).toBe('arraybuffer');
    expect(rc.state).toBe('open');
    expect(rc.info).toEqual({ sid: 'abc', uid: 'alice', node: 'n9', hb: 30 });
    expect(of('open')[0]).toMatchObject({ sid: 'abc', uid: 'alice', node: 'n9', hb: 30 });
    expect(of('open')[0]!.url).not.toContain('SECRET'); // the token is never echoed in events
    await expect(rc.ready()).resolves.toBeUndefined();
    await rc.close();
    expect(rc.state).toBe('closed');
  });

  it('connects without a token (guest) and rejects a missing url', () => {
    expect(() => connect({} as ConnectOptions)).toThrow(/url/);
    expect(() => connect({ url: 'not a url' })).toThrow();
  });

  it('uses global WebSocket-like constructors passed as options.WebSocket', async () => {
    const made: string[] = [];
    class Fake {
      binaryType = '';
      readyState = 0;
      constructor(url: string) {
        made.push(url);
      }
      close() {}
    }
    const rc = connect({ url: 'ws://x/ws', WebSocket: Fake, clock: new FakeClock() });
    await flush();
    expect(made).toEqual(['ws://x/ws']);
    void rc.close(); // the fake never fires close; close() would wait for the (fake) clock
  });
});

describe('reconnecting', () => {
  it('backs off exponentially from 500 ms, capped at 10 s, with equal jitter (src/util/backoff.ts)', async () => {
    const { t, clock, rnd, of, rc } = setup();
    rnd.value = 0.999;
    const seen: Array<number | undefined> = [];
    for (let i = 0; i < 7; i++) {
      await flush();
      t.last.fail();
      await flush();
      seen.push(delays(of).at(-1));
      await clock.advance(delays(of).at(-1)!);
    }
    expect(seen).toEqual([500, 1000, 1999, 3998, 7996, 9995, 9995]);
    expect(t.sockets).toHaveLength(8);
    // jitter: the delay is half the ceiling plus random * half, so random 0 gives half the cap
    rnd.value = 0;
    t.last.fail();
    await flush();
    expect(delays(of).at(-1)).toBe(5000);
    expect(of<{ state: string; previous: string }>('state')[0]).toMatchObject({ state: 'reconnecting', previous: 'connecting' });
    await rc.close();
  });

  it('waits for the delay before the next attempt', async () => {
    const { t, clock, rnd, rc } = setup();
    rnd.value = 0.999;
    await flush();
    t.last.fail();
    await clock.advance(499);
    expect(t.sockets).toHaveLength(1);
    await clock.advance(1);
    expect(t.sockets).toHaveLength(2);
    await rc.close();
  });

  it('resets the backoff after a connection that stayed up, not after a short-lived one', async () => {
    const { t, clock, rnd, of, rc } = setup();
    rnd.value = 0.999;
    for (let i = 0; i < 3; i++) {
      await flush();
      t.last.fail();
      await clock.advance(delays(of).at(-1)!);
    }
    expect(delays(of)).toEqual([500, 1000, 1999]);
    // short-lived: open 1 s, then dropped — backoff keeps growing
    await open(t);
    await clock.advance(1000);
    t.last.serverClose(1006);
    await flush();
    expect(delays(of).at(-1)).toBe(3998);
    await clock.advance(3998);
    // stable: open 6 s — back to the base
    await open(t);
    await clock.advance(6000);
    t.last.serverClose(1006);
    await flush();
    expect(delays(of).at(-1)).toBe(500);
    expect(of<{ state: string; closeCode?: number }>('state').at(-1)).toMatchObject({ state: 'reconnecting', closeCode: 1006 });
    await rc.close();
  });

  it('rotates through the host list', async () => {
    const { t, clock, of, rc } = setup({ url: undefined, urls: ['ws://a/ws', 'ws://b/ws', 'ws://c/ws'] });
    for (let i = 0; i < 4; i++) {
      await flush();
      t.last.fail();
      await clock.advance(delays(of).at(-1)!);
    }
    expect(t.sockets.map((s) => new URL(s.url).host)).toEqual(['a', 'b', 'c', 'a', 'b']);
    await rc.close();
  });

  it('honours bye.reconnectMs (from the bye) and moves to the next host', async () => {
    const { t, clock, of, rc } = setup({ url: undefined, urls: ['ws://a/ws', 'ws://b/ws'] });
    const s = await open(t);
    s.push({ op: 'bye', reason: 'draining', reconnectMs: 3000 });
    await clock.advance(200);
    s.serverClose(1001, 'draining');
    await flush();
    expect(of('bye')).toEqual([{ reason: 'draining', reconnectMs: 3000 }]);
    expect(delays(of)).toEqual([2800]);
    await clock.advance(2799);
    expect(t.sockets).toHaveLength(1);
    await clock.advance(1);
    expect(t.sockets).toHaveLength(2);
    expect(new URL(t.last.url).host).toBe('b');
    await rc.close();
  });

  it('leaves by itself when the server has not closed by bye.reconnectMs', async () => {
    const { t, clock, rc } = setup();
    const s = await open(t);
    s.push({ op: 'bye', reason: 'draining', reconnectMs: 1000 });
    await clock.advance(1000);
    expect(s.closedWith).toBeDefined();
    await flush();
    expect(t.sockets).toHaveLength(2);
    await rc.close();
  });

  it('gives up an attempt that is never welcomed (connect timeout)', async () => {
    const { t, clock, of, rc } = setup({ connectTimeoutMs: 5000 });
    await flush();
    await clock.advance(5000);
    expect(t.sockets[0]!.closedWith).toBeDefined();
    expect(of<{ error?: { code: string } }>('state').at(-1)!.error?.code).toBe('TIMEOUT');
    await rc.close();
  });

  it('pings after silence and reconnects when nothing comes back', async () => {
    const { t, clock, of, rc } = setup({ pingIntervalMs: 20_000, pongTimeoutMs: 5_000 });
    const s = await open(t);
    await clock.advance(20_000);
    const ping = s.last('ping');
    expect(typeof ping.ref).toBe('number');
    s.push({ op: 'pong', ref: ping.ref, ts: 1 });
    await clock.advance(5_000);
    expect(rc.state).toBe('open');
    await clock.advance(20_000);
    expect(s.ops('ping')).toHaveLength(2);
    await clock.advance(5_000);
    expect(rc.state).toBe('reconnecting');
    expect(of<{ error?: { code: string } }>('state').at(-1)!.error?.code).toBe('TIMEOUT');
    await rc.close();
  });

  it('does not reconnect after close code 4008 (bad frames)', async () => {
    const { t, clock, of, rc } = setup();
    await open(t).then((s) => s.serverClose(4008, 'too many bad frames'));
    await clock.advance(60_000);
    expect(t.sockets).toHaveLength(1);
    expect(rc.state).toBe('closed');
    expect(of<{ code: string }>('error').map((e) => e.code)).toEqual(['PROTOCOL']);
  });

  it('close() stops everything: no reconnect, ready() rejects', async () => {
    const { t, clock, rc } = setup();
    await flush();
    t.last.fail();
    await rc.close();
    await clock.advance(60_000);
    expect(t.sockets).toHaveLength(1);
    await expect(rc.ready()).rejects.toMatchObject({ code: 'CLOSED' });
    expect(clock.pending()).toEqual([]);
  });
});

describe('tokens', () => {
  const HOUR = 3600_000;

  it('gets a token from getToken when none is given, and refreshes it 30 s before exp', async () => {
    const clock0 = new FakeClock();
    let n = 0;
    const getToken = async () => jwt({ sub: 'u', n: ++n, exp: Math.floor((clock0.now() + HOUR) / 1000) });
    const { t, clock, rc } = setup({ clock: clock0, getToken, pingIntervalMs: 2 * HOUR });
    const s = await open(t);
    expect(n).toBe(1);
    expect(s.query.get('token')).toBe(jwt({ sub: 'u', n: 1, exp: Math.floor((clock0.now() + HOUR) / 1000) }));
    await clock.advance(HOUR - 31_000);
    expect(n).toBe(1);
    await clock.advance(1_000);
    expect(n).toBe(2);
    // the open connection gets it as a refresh op (PROTOCOL §9), and so does the next one
    expect(rc.state).toBe('open');
    expect(JSON.parse(Buffer.from(String(s.last('refresh').token).split('.')[1]!, 'base64url').toString()).n).toBe(2);
    s.serverClose(1006);
    await clock.advance(10_000);
    expect(JSON.parse(Buffer.from(t.last.query.get('token')!.split('.')[1]!, 'base64url').toString()).n).toBe(2);
    await rc.close();
  });

  it('refreshes on the open connection: refresh op, refreshed answer, next refresh before the new exp', async () => {
    const clock0 = new FakeClock();
    let n = 0;
    const getToken = () => jwt({ sub: 'u', n: ++n, exp: Math.floor((clock0.now() + HOUR) / 1000) });
    const { t, clock, rc, of } = setup({ clock: clock0, getToken, pingIntervalMs: 2 * HOUR });
    const s = await open(t);
    await clock.advance(HOUR - 30_000);
    const r1 = s.last('refresh');
    s.push({ op: 'refreshed', ref: r1.ref, exp: Math.floor((clock.now() + HOUR) / 1000) });
    await flush();
    expect(s.ops('refresh')).toHaveLength(1);
    await clock.advance(HOUR - 30_000);
    expect(s.ops('refresh')).toHaveLength(2);
    // A refused refresh is reported and tried again later; the connection stays.
    s.push({ op: 'error', ref: s.last('refresh').ref, code: 'BAD_TOKEN', message: 'bad' });
    await flush();
    expect(of<{ code: string }>('error').map((e) => e.code)).toEqual(['BAD_TOKEN']);
    await clock.advance(5_000);
    expect(s.ops('refresh')).toHaveLength(3);
    expect(rc.state).toBe('open');
    await rc.close();
  });

  it('refreshes at once on the server\'s expiring hint', async () => {
    let n = 0;
    const { t, rc } = setup({ getToken: () => jwt({ sub: 'u', n: ++n, exp: 4_000_000_000 }), pingIntervalMs: 2 * HOUR });
    const s = await open(t);
    s.push({ op: 'expiring', in: 20_000 });
    await flush();
    expect(n).toBe(2);
    expect(s.ops('refresh')).toHaveLength(1);
    await rc.close();
  });

  it('reconnects with a fresh token after close 4010, and stays out after 4011', async () => {
    let n = 0;
    const { t, clock, rc, of } = setup({ getToken: () => jwt({ sub: 'u', n: ++n, exp: 4_000_000_000 }), pingIntervalMs: 2 * HOUR });
    await open(t);
    t.last.serverClose(4010, 'token expired');
    await clock.advance(1000);
    expect(t.sockets).toHaveLength(2);
    expect(n).toBe(2);
    expect(JSON.parse(Buffer.from(t.last.query.get('token')!.split('.')[1]!, 'base64url').toString()).n).toBe(2);
    const s = await open(t);
    s.push({ op: 'bye', reason: 'banned', reconnectMs: 0 });
    s.serverClose(4011, 'disconnected');
    await clock.advance(60_000);
    expect(t.sockets).toHaveLength(2);
    expect(rc.state).toBe('closed');
    expect(of<{ code: string; message: string }>('error').at(-1)).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringContaining('4011') });
  });

  it('calls getToken before connecting when the token expires within 30 s', async () => {
    const clock0 = new FakeClock();
    const soon = jwt({ sub: 'u', exp: Math.floor((clock0.now() + 20_000) / 1000) });
    const fresh = jwt({ sub: 'u', exp: Math.floor((clock0.now() + HOUR) / 1000) });
    let calls = 0;
    const { t, rc } = setup({
      clock: clock0,
      token: soon,
      getToken: () => {
        calls++;
        return fresh;
      },
    });
    const s = await open(t);
    expect(calls).toBe(1);
    expect(s.query.get('token')).toBe(fresh);
    await rc.close();
  });

  it('keeps a static token that is far from expiry and does not call getToken', async () => {
    const clock0 = new FakeClock();
    const tok = jwt({ sub: 'u', exp: Math.floor((clock0.now() + HOUR) / 1000) });
    let calls = 0;
    const { t, rc } = setup({ clock: clock0, token: tok, getToken: () => (calls++, 'x') });
    const s = await open(t);
    expect(calls).toBe(0);
    expect(s.query.get('token')).toBe(tok);
    await rc.close();
  });

  it('asks for a new token after the server refused one (401), reporting UNAUTHORIZED', async () => {
    let n = 0;
    const { t, clock, of, rc } = setup({ getToken: () => `tok${++n}` });
    await flush();
    t.last.fail('Unexpected server response: 401');
    await clock.advance(1000);
    expect(t.last.query.get('token')).toBe('tok2');
    expect(of<{ code: string }>('error').map((e) => e.code)).toEqual(['UNAUTHORIZED']);
    await rc.close();
  });

  it('suspects an old token after repeated unexplained failures (browsers cannot see a 401), not after a 429', async () => {
    let n = 0;
    const { t, clock, rc } = setup({ getToken: () => `tok${++n}`, pingIntervalMs: 2 * HOUR, connectTimeoutMs: HOUR });
    await open(t);
    await clock.advance(10 * 60_000); // the token is now 10 minutes old
    t.last.serverClose(1006);
    for (let i = 0; i < 3; i++) {
      await clock.advance(10_000);
      t.last.fail('Unexpected server response: 429'); // a known status: not the token's fault
    }
    await clock.advance(10_000);
    expect(t.sockets).toHaveLength(5);
    expect(n).toBe(1);
    t.last.fail(); // unexplained, as a browser sees a refused upgrade
    await clock.advance(10_000);
    expect(n).toBe(1);
    t.last.fail();
    await clock.advance(10_000);
    expect(n).toBe(2);
    expect(t.last.query.get('token')).toBe('tok2');
    await rc.close();
  });

  it('reports a failing getToken as TOKEN_FAILED and retries with backoff', async () => {
    let fail = true;
    const { t, clock, of, rc } = setup({
      getToken: async () => {
        if (fail) throw new Error('backend down');
        return 'tok';
      },
    });
    await flush();
    expect(t.sockets).toHaveLength(0);
    expect(of<{ code: string }>('error')[0]).toMatchObject({ code: 'TOKEN_FAILED' });
    expect(rc.state).toBe('reconnecting');
    fail = false;
    await clock.advance(1000);
    await open(t);
    expect(rc.state).toBe('open');
    await rc.close();
  });

  it('reports an expired static token without getToken', async () => {
    const clock0 = new FakeClock();
    const { of, rc } = setup({ clock: clock0, token: jwt({ sub: 'u', exp: Math.floor(clock0.now() / 1000) - 10 }) });
    await flush();
    expect(of<{ code: string }>('error').map((e) => e.code)).toEqual(['UNAUTHORIZED']);
    await rc.close();
  });
});
