// Hardening: fuzzing the HTTP API (PROTOCOL §6) — random JSON and garbage bodies, wrong types
// in every field, invalid UTF-8, deeply nested values, oversized bodies, odd paths, methods and
// HTTP framing. The oracle: only 200/202/400/401/404/413/429, never 500; every error is
// {error:{code,message}} with a documented code and status; an accepted (202) message is
// delivered (acknowledged means not lost); and the worker keeps ticking and serving afterwards.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExtData } from '@msgpack/msgpack';
import type { RoomcastNode } from '../src/node.js';
import { startTestNode, token, wsUrl } from './helpers.js';
import {
  FuzzClient,
  fuzzCount,
  fuzzTimeout,
  fuzzSeed,
  HTTP_ERRORS,
  HTTP_FUZZ_STATUSES,
  mp,
  mutate,
  pool,
  randomValue,
  rawHttp,
  Rng,
  sleep,
  type Frame,
} from './fuzz-helpers.js';

const KEY = 'fuzz-api-key-0123456';

interface Req {
  method: string;
  path: string;
  body?: Buffer | string;
  auth?: string | null;
  what: string;
}

/** JSON.stringify-able version of any fuzz value (bins → arrays, bigints → numbers). */
function jsonable(v: unknown): unknown {
  if (ArrayBuffer.isView(v)) return [...new Uint8Array(v.buffer, v.byteOffset, Math.min(64, v.byteLength))];
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof ExtData) return { type: v.type, data: [...(v.data as Uint8Array).subarray(0, 16)] };
  if (Array.isArray(v)) return v.map(jsonable);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonable(x)])); // own __proto__ keys stay own keys
  return v;
}

/** JSON text of a value nested `depth` levels deep (built as text: JSON.stringify would recurse). */
function nestedJson(depth: number, leaf = '"x"', array = false): string {
  return array ? '['.repeat(depth) + leaf + ']'.repeat(depth) : '{"a":'.repeat(depth) + leaf + '}'.repeat(depth);
}

/** JSON text of `obj` with the value of `key` replaced by raw JSON text. */
function withRaw(obj: Record<string, unknown>, key: string, rawJson: string): string {
  const marker = '"@@RAW@@"';
  return JSON.stringify({ ...obj, [key]: '@@RAW@@' }).replace(marker, rawJson);
}

const ROOM_PARAMS = ['hf-room', 'hf-room-2', 'a', 'x'.repeat(64), 'x'.repeat(65), 'a%20b', '%zz', '%00', 'a%2Fb', '%C3%A4', '..', 'r'.repeat(3000), '%F0%9F%98%80', ''];

function validBody(rng: Rng, route: 'messages' | 'broadcast' | 'kick' | 'mute'): Record<string, unknown> {
  switch (route) {
    case 'messages':
      return {
        kind: rng.pick(['system', 'gift', 'chat', 'custom_1', 'x-y']),
        body: rng.chance(0.7) ? 'hello' : { amount: rng.int(100), sku: 'rose' },
        ...(rng.chance(0.3) ? { uid: 'backend' } : {}),
        ...(rng.chance(0.3) ? { name: 'Backend' } : {}),
        ...(rng.chance(0.3) ? { priority: rng.pick(['high', 'normal']) } : {}),
        ...(rng.chance(0.3) ? { x: { a: 1 } } : {}),
      };
    case 'broadcast':
      return { kind: 'system', body: 'to all', ...(rng.chance(0.3) ? { x: { b: 2 } } : {}) };
    case 'kick':
      return { uid: 'nobody', ...(rng.chance(0.5) ? { reason: 'r', seconds: rng.int(100) } : {}) };
    default:
      return { ...(rng.chance(0.5) ? { uid: 'nobody' } : {}), seconds: rng.int(100) };
  }
}

function fuzzRequest(rng: Rng): Req {
  const room = rng.chance(0.8) ? rng.pick(ROOM_PARAMS.slice(0, 4)) : rng.pick(ROOM_PARAMS);
  const routes = ['messages', 'broadcast', 'kick', 'mute', 'get-room', 'top', 'other'] as const;
  const route = rng.pick(routes);
  const auth = rng.chance(0.1)
    ? rng.pick([null, 'Bearer wrong', `Bearer ${KEY}x`, `Bearer ${KEY.slice(1)}`, KEY, `Basic ${KEY}`, 'Bearer ', `bearer ${KEY}`, `Bearer   ${KEY} `])
    : `Bearer ${KEY}`;
  if (route === 'get-room') return { method: 'GET', path: `/v1/rooms/${room}`, auth, what: 'get room' };
  if (route === 'top') {
    const top = rng.pick(['', '1', '10', '1000', '1001', '0', '-1', '1.5', 'abc', '1e3', '%00', '9'.repeat(400), '0x10', ' 5']);
    return { method: 'GET', path: `/v1/rooms${rng.chance(0.9) ? `?top=${top}` : ''}`, auth, what: 'top rooms' };
  }
  if (route === 'other') {
    const method = rng.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH']);
    const path = rng.pick(['/v1/rooms/r/messages', '/v1/broadcast', '/v1/rooms', '/v1', '/v1/', '/v2/rooms', '/v1/rooms/r/kick/x', '/V1/ROOMS', '//v1/rooms', '/healthz', '/readyz', '/dev/token?uid=x', '/', '/ws']);
    return { method, path, auth, body: method === 'GET' ? undefined : '{}', what: `${method} ${path}` };
  }
  const path = route === 'broadcast' ? '/v1/broadcast' : `/v1/rooms/${room}/${route}`;
  const base = validBody(rng, route);
  const r = rng.int(100);
  let body: Buffer | string;
  let what: string;
  if (r < 20) {
    body = JSON.stringify(base);
    what = 'valid';
  } else if (r < 45) {
    const o: Record<string, unknown> = { ...base };
    const field = rng.chance(0.8) ? rng.pick(['kind', 'body', 'uid', 'name', 'priority', 'x', 'reason', 'seconds']) : rng.pick(['zzz', '__proto__', 'constructor']);
    Object.defineProperty(o, field, { value: jsonable(randomValue(rng, 1, 300)), enumerable: true, writable: true, configurable: true });
    body = JSON.stringify(o);
    what = `wrong type in ${field}`;
  } else if (r < 55) {
    body = JSON.stringify(jsonable(randomValue(rng)));
    what = 'random JSON';
  } else if (r < 70) {
    body = Buffer.from(mutate(rng, Buffer.from(JSON.stringify(base))));
    what = 'mutated JSON';
  } else if (r < 75) {
    body = Buffer.from(rng.bytes(rng.len(2000)));
    what = 'garbage bytes';
  } else if (r < 78) {
    body = Buffer.from(mp(base));
    what = 'MessagePack instead of JSON';
  } else if (r < 83) {
    const s = JSON.stringify({ ...base, kind: '@@K', body: '@@B' });
    body = Buffer.concat(s.split(/@@[KB]/).flatMap((part, i) => (i === 0 ? [Buffer.from(part)] : [Buffer.from([0xff, 0xc0, 0xed, 0xa0, 0x80]), Buffer.from(part)])));
    what = 'invalid UTF-8 strings';
  } else if (r < 88) {
    const big = rng.pick([65_536, 65_537, 200_000, 1_000_000]);
    body = JSON.stringify({ ...base, body: 'x'.repeat(big) });
    what = `oversized body (${big})`;
  } else if (r < 93) {
    const large = rng.pick([4000, 4097, 5000, 20_000, 60_000]);
    body = JSON.stringify({ ...base, body: rng.chance(0.5) ? 'y'.repeat(large) : { t: 'z'.repeat(large) }, x: rng.chance(0.5) ? { s: 'x'.repeat(rng.pick([1000, 1025, 3000])) } : undefined });
    what = 'large body or x';
  } else {
    const depth = rng.pick([5, 30, 60, 90, 101, 150, 400, 5000]);
    const where = rng.pick(['body', 'x']);
    body = withRaw(base, where, nestedJson(depth, '1', rng.chance(0.3)));
    what = `${where} nested ${depth} deep`;
  }
  return { method: 'POST', path, body, auth, what };
}

async function send(port: number, r: Req): Promise<{ status: number; text: string; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (r.auth !== null && r.auth !== undefined) headers.authorization = r.auth;
  if (r.body !== undefined) headers['content-type'] = 'application/json';
  const body = typeof r.body === 'string' || r.body === undefined ? r.body : new Uint8Array(r.body);
  const res = await fetch(`http://127.0.0.1:${port}${r.path}`, { method: r.method, headers, body, signal: AbortSignal.timeout(8000) });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** The scheme is case-insensitive and HTTP trims header whitespace (RFC 7235, RFC 9110). */
const rightKey = (auth: string | null | undefined) => typeof auth === 'string' && new RegExp(`^Bearer +${KEY}\\s*$`, 'i').test(auth);

/** Problems with one API response (empty when it is within the contract). */
function responseProblems(r: Req, res: { status: number; text: string; headers: Headers }): string[] {
  const out: string[] = [];
  if (!HTTP_FUZZ_STATUSES.has(res.status)) out.push(`status ${res.status}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.text);
  } catch {
    return [...out, `body is not JSON: ${res.text.slice(0, 80)}`];
  }
  if (res.status >= 400) {
    const e = (parsed as { error?: { code?: unknown; message?: unknown } }).error;
    if (!e || typeof e.code !== 'string' || typeof e.message !== 'string' || e.message.length === 0) out.push(`not {error:{code,message}}: ${res.text.slice(0, 120)}`);
    else if (!HTTP_ERRORS[e.code]?.includes(res.status)) out.push(`code ${e.code} with status ${res.status}`);
    if (res.status === 429 && !res.headers.get('retry-after')) out.push('429 without Retry-After');
  }
  // Without the key: 401, or 404 for no such route, or 413 for a body over 64 KiB (refused
  // before the route runs, so before the key check).
  if (r.path.startsWith('/v1') && !rightKey(r.auth) && ![401, 404, 413].includes(res.status)) out.push(`answered ${res.status} without the right key`);
  if (r.path.startsWith('/v1') && rightKey(r.auth) && res.status === 401) out.push('401 with the right key');
  return out;
}

describe('HTTP API fuzz', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 10, secret: 'http-fuzz-secret-0123456789abcdef012345', apiKey: KEY, apiRate: 200 });
  });
  afterAll(() => node?.stop());

  it('seeded random requests: only documented statuses and error bodies, never 500', async () => {
    const seed = fuzzSeed(0x5eed10);
    const rng = new Rng(seed);
    const total = fuzzCount(1500);
    const reqs = Array.from({ length: total }, () => fuzzRequest(rng));
    // A member in the rooms the fuzz writes to, so messages are delivered (and counted).
    const t = await token(node, { uid: 'hf-watcher' });
    const watcher = await FuzzClient.open(wsUrl(node.port, { token: t, room: 'hf-room' }));
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    const t0 = Date.now();
    await pool(reqs, 8, async (r, i) => {
      if (failures.length >= 20) return;
      let res;
      try {
        res = await send(node.port, r);
      } catch (err) {
        failures.push(`#${i} ${r.what} ${r.method} ${r.path.slice(0, 60)}: no answer (${(err as Error).message})`);
        return;
      }
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      for (const p of responseProblems(r, res)) failures.push(`#${i} ${r.what} ${r.method} ${r.path.slice(0, 60)}: ${p}`);
    });
    expect(failures, `seed ${seed}`).toEqual([]);
    expect(statuses.get(202) ?? 0).toBeGreaterThan(0);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(0);
    expect(statuses.get(413) ?? 0).toBeGreaterThan(0);
    // Still ticking and serving.
    const res = await send(node.port, { method: 'POST', path: '/v1/rooms/hf-room/messages', body: JSON.stringify({ kind: 'system', body: 'after the fuzz' }), auth: `Bearer ${KEY}`, what: 'probe' });
    expect(res.status).toBe(202);
    await watcher.until(() => watcher.frames.some((f) => f.op === 'batch' && (f.msgs as Array<{ b: unknown }>).some((m) => m.b === 'after the fuzz')));
    expect(watcher.problems).toEqual([]);
    watcher.close();
    console.log(`http fuzz seed ${seed}: ${total} requests in ${Date.now() - t0} ms; statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  }, fuzzTimeout(120_000));
});

describe('HTTP API: deeply nested JSON', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 10, secret: 'nest-secret-0123456789abcdef0123456789ab', apiKey: KEY });
  });
  afterAll(() => node?.stop());

  // body/x are re-encoded as MessagePack (size check, bus, batch frame), where the encoder
  // refuses more than 100 levels; inside a batch frame a body sits 4 levels down.
  it('is refused with 400/413 or accepted and delivered — never 500, and the worker keeps ticking', async () => {
    const room = 'nest-room';
    const t = await token(node, { uid: 'nest-watcher' });
    const w = await FuzzClient.open(wsUrl(node.port, { token: t, room }));
    await w.until(() => w.frames.some((f) => f.op === 'joined'));
    const failures: string[] = [];
    let n = 0;
    let dead = false;
    for (const depth of [20, 60, 95, 96, 97, 98, 99, 100, 101, 150, 1000, 20_000]) {
      for (const [where, route] of [['body', `/v1/rooms/${room}/messages`], ['x', `/v1/rooms/${room}/messages`], ['body', '/v1/broadcast']] as const) {
        if (dead) break;
        const marker = `nest-${++n}`;
        const base: Record<string, unknown> = { kind: 'custom', body: marker };
        if (route !== '/v1/broadcast') base.priority = 'high';
        // In `body` the nesting sits under {marker, v}; in `x` the body is the plain marker.
        const text = where === 'body' ? withRaw(base, 'body', `{"marker":"${marker}","v":${nestedJson(depth)}}`) : withRaw(base, 'x', nestedJson(depth));
        const r: Req = { method: 'POST', path: route, body: text, auth: `Bearer ${KEY}`, what: `${where} ${depth} deep` };
        let res;
        try {
          res = await send(node.port, r);
        } catch (err) {
          failures.push(`${r.what} via ${route}: no answer (${(err as Error).message})`);
          dead = true;
          continue;
        }
        if (![202, 400, 413].includes(res.status)) failures.push(`${r.what} via ${route}: ${res.status} ${res.text.slice(0, 100)}`);
        else failures.push(...responseProblems(r, res).map((p) => `${r.what}: ${p}`));
        if (res.status === 202) {
          // Acknowledged means logged and delivered: it must reach the member.
          const seen = await w
            .until(() => w.frames.some((f) => f.op === 'batch' && (f.msgs as Array<{ b: unknown }>).some((m) => JSON.stringify(m.b).includes(marker))), 3000)
            .then(() => true, () => false);
          if (!seen) {
            failures.push(`${r.what} via ${route}: 202 but never delivered`);
            dead = true;
          }
        }
      }
    }
    // The worker is still ticking: a plain message is delivered.
    const probe = await send(node.port, { method: 'POST', path: `/v1/rooms/${room}/messages`, body: JSON.stringify({ kind: 'system', body: 'still ticking' }), auth: `Bearer ${KEY}`, what: 'probe' }).catch(
      (err: Error) => ({ status: 0, text: err.message, headers: new Headers() }),
    );
    if (probe.status !== 202) failures.push(`probe after the nesting: ${probe.status} ${probe.text}`);
    else {
      const ok = await w.until(() => w.frames.some((f: Frame) => f.op === 'batch' && (f.msgs as Array<{ b: unknown }>).some((m) => m.b === 'still ticking')), 3000).then(() => true, () => false);
      if (!ok) failures.push('probe after the nesting: 202 but never delivered (the tick loop died)');
    }
    w.close();
    expect(failures).toEqual([]);
  }, 120_000);
});

describe('HTTP framing (uWS) on the API port', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 10, secret: 'framing-secret-0123456789abcdef012345678', apiKey: KEY });
  });
  afterAll(() => node?.stop());

  const post = (headers: string, body: string) => `POST /v1/rooms/hf/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n${headers}\r\n${body}`;
  const ok = JSON.stringify({ kind: 'system', body: 'chunked hello' });

  it('a chunked body is read (and limited)', async () => {
    const chunked = (s: string) => `${s.length.toString(16)}\r\n${s}\r\n0\r\n\r\n`;
    const res = await rawHttp(node.port, post('Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n', chunked(ok)));
    expect(res.status).toBe(202);
    // Over 64 KiB without a Content-Length: refused while reading.
    const big = 'x'.repeat(70_000);
    const res2 = await rawHttp(node.port, post('Transfer-Encoding: chunked\r\n', chunked(big)));
    expect(res2.status).toBe(413);
    expect(JSON.parse(res2.body)).toMatchObject({ error: { code: 'TOO_LARGE' } });
  });

  it('a body that arrives in two writes is read whole', async () => {
    const body = JSON.stringify({ kind: 'system', body: 'two halves '.repeat(40) });
    const half = body.length >> 1;
    const res = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ port: node.port, host: '127.0.0.1' });
      let got = '';
      s.on('data', (d: Buffer) => {
        got += d.toString();
        if (got.includes('\r\n\r\n')) s.end();
      });
      s.on('close', () => resolve(got));
      s.on('error', reject);
      s.write(post(`Content-Type: application/json\r\nContent-Length: ${body.length}\r\n`, body.slice(0, half)));
      setTimeout(() => s.write(body.slice(half)), 50);
    });
    // Half a body is not JSON: a 202 means both writes were joined.
    expect(res).toMatch(/^HTTP\/1\.1 202 /);
  });

  it('a declared Content-Length over 64 KiB is refused (413) before the body is read', async () => {
    const res = await rawHttp(node.port, post('Content-Length: 70000\r\n', '{}'));
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'TOO_LARGE' } });
  });

  it('request smuggling shapes and broken lengths get no response and a closed connection', async () => {
    for (const headers of ['Content-Length: 4\r\nTransfer-Encoding: chunked\r\n', 'Content-Length: -5\r\n', 'Content-Length: abc\r\n']) {
      const res = await rawHttp(node.port, post(headers, '0\r\n\r\n'), { timeoutMs: 3000 });
      expect(res.status, headers).toBe(0);
      expect(res.closedAfterMs, headers).toBeDefined();
    }
    const res = await rawHttp(node.port, 'BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 3000 });
    expect(res.status).toBe(0);
    expect(res.closedAfterMs).toBeDefined();
  });

  it('headers of 64 KiB are served; 1 MB of headers resets the connection', async () => {
    const res = await rawHttp(node.port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(65_000)}\r\n\r\n`);
    expect(res.status).toBe(200);
    const huge = await rawHttp(node.port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(1_000_000)}\r\n\r\n`, { timeoutMs: 3000 });
    expect(huge.status).toBe(0);
    expect(huge.closedAfterMs).toBeDefined();
  });

  it('the worker still serves after all of it', async () => {
    await sleep(10);
    const res = await fetch(`http://127.0.0.1:${node.port}/healthz`);
    expect(res.status).toBe(200);
  });
});
