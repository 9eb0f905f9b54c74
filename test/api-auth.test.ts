// Server API authentication (PROTOCOL §6): `Authorization: Bearer <api key>` on every /v1
// route, 401 {error:{code:'UNAUTHORIZED'}} otherwise, checked before anything else.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, SECRET, startTestNode } from './helpers.js';
import { api, expectError, type ApiCallOptions } from './api-helpers.js';

/** Every /v1 route with a request that succeeds when authorized. */
const ROUTES: Array<{ method: 'GET' | 'POST'; path: string; body?: unknown; ok: number }> = [
  { method: 'POST', path: '/v1/rooms/auth-room/messages', body: { kind: 'system', body: 'hello' }, ok: 202 },
  { method: 'POST', path: '/v1/broadcast', body: { kind: 'system', body: 'hello all' }, ok: 202 },
  { method: 'GET', path: '/v1/rooms/auth-room', ok: 200 },
  { method: 'GET', path: '/v1/rooms?top=5', ok: 200 },
  { method: 'POST', path: '/v1/rooms/auth-room/kick', body: { uid: 'nobody', seconds: 0 }, ok: 200 },
  { method: 'POST', path: '/v1/rooms/auth-room/mute', body: { uid: 'nobody', seconds: 0 }, ok: 200 },
];

const BAD_AUTH: Array<[string, ApiCallOptions]> = [
  ['no Authorization header', { key: null }],
  ['a wrong key', { key: 'wrong' }],
  ['a key with a suffix', { key: `${API_KEY}k` }],
  ['an empty bearer', { authorization: 'Bearer ' }],
  ['the bare key without a scheme', { authorization: API_KEY }],
  ['the Basic scheme', { authorization: `Basic ${Buffer.from(`${API_KEY}:`).toString('base64')}` }],
  ['the Basic scheme carrying the key', { authorization: `Basic ${API_KEY}` }],
  ['the dev key', { key: 'dev' }],
];

describe('the /v1 API key', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ apiKey: API_KEY, secret: SECRET, tickMs: 20 });
  });
  afterAll(() => node?.stop());

  describe.each(ROUTES)('$method $path', (route) => {
    it.each(BAD_AUTH)('answers 401 UNAUTHORIZED to %s', async (what, auth) => {
      const res = await api(node, route.method, route.path, route.body, auth);
      expectError(res, 401, 'UNAUTHORIZED', what);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    });
  });

  it('does nothing for an unauthorized request (nothing is logged)', async () => {
    const res = await api(node, 'POST', '/v1/rooms/auth-untouched/messages', { kind: 'system', body: 'x' }, { key: 'wrong' });
    expectError(res, 401, 'UNAUTHORIZED');
    expectError(await api(node, 'GET', '/v1/rooms/auth-untouched'), 404, 'NOT_FOUND');
  });

  it('checks the key before the path and the body', async () => {
    expectError(await api(node, 'POST', '/v1/rooms/bad%20room/messages', { kind: 'system', body: 'x' }, { key: null }), 401, 'UNAUTHORIZED');
    expectError(await api(node, 'POST', '/v1/rooms/r/messages', undefined, { key: 'wrong', raw: 'not json' }), 401, 'UNAUTHORIZED');
    expectError(await api(node, 'GET', '/v1/rooms?top=0', undefined, { key: null }), 401, 'UNAUTHORIZED');
  });

  // The positive control: the same requests with the right key are answered (in order, so
  // GET /v1/rooms/auth-room finds the log the first POST wrote).
  it('serves every route with the right key', async () => {
    for (const route of ROUTES) {
      const res = await api(node, route.method, route.path, route.body);
      expect(res.status, `${route.method} ${route.path}: ${res.text}`).toBe(route.ok);
    }
  });

  it('leaves /metrics, /healthz and /readyz open', async () => {
    for (const path of ['/metrics', '/healthz', '/readyz']) expect((await api(node, 'GET', path, undefined, { key: null })).status, path).toBe(200);
  });
});

describe('a node with a secret and no API key', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ secret: SECRET, tickMs: 20 });
  });
  afterAll(() => node?.stop());

  const anyKey: Array<[string, ApiCallOptions]> = [
    ['no header', { key: null }],
    ['the dev key', { key: 'dev' }],
    ['the secret', { key: 's' }],
    ['an empty bearer', { authorization: 'Bearer ' }],
    ['"null"', { key: 'null' }],
    ['"undefined"', { key: 'undefined' }],
  ];
  describe.each(ROUTES)('$method $path', (route) => {
    it.each(anyKey)('is always 401, e.g. with %s', async (what, auth) => {
      expectError(await api(node, route.method, route.path, route.body, auth), 401, 'UNAUTHORIZED', what);
    });
  });
});

describe('dev mode', () => {
  let dev: RoomcastNode;
  let devWithKey: RoomcastNode;
  beforeAll(async () => {
    [dev, devWithKey] = await Promise.all([startTestNode({ tickMs: 20 }), startTestNode({ tickMs: 20, apiKey: 'k' })]);
  });
  afterAll(async () => {
    await Promise.all([dev?.stop(), devWithKey?.stop()]);
  });

  it('uses the key "dev" when no API key is configured', async () => {
    expect((await api(dev, 'GET', '/v1/rooms', undefined, { key: 'dev' })).status).toBe(200);
    expectError(await api(dev, 'GET', '/v1/rooms', undefined, { key: 'k' }), 401, 'UNAUTHORIZED');
    expectError(await api(dev, 'GET', '/v1/rooms', undefined, { key: null }), 401, 'UNAUTHORIZED');
  });

  it('uses the configured key, not "dev", when one is given', async () => {
    expect((await api(devWithKey, 'GET', '/v1/rooms', undefined, { key: 'k' })).status).toBe(200);
    expectError(await api(devWithKey, 'GET', '/v1/rooms', undefined, { key: 'dev' }), 401, 'UNAUTHORIZED');
  });
});
