// Issue 14, HTTP: conflicting duplicate Content-Length is refused with 400 and a close
// (finding 10, RFC 9112 §6.3), and /v1 answers 401 before reading a body (finding 11).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, SECRET, startTestNode } from './helpers.js';
import { metric } from './ws-helpers.js';
import { rawExchange } from './security-helpers.js';

describe('HTTP framing and early refusals', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20, secret: SECRET, apiKey: API_KEY });
  });
  afterAll(() => node?.stop());

  const smuggled = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
  const head = (path: string, headers: string) => `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\n${headers}\r\n`;

  it('finding 10: Content-Length 0 and Content-Length N carrying a second request: never served, the connection closes', async () => {
    for (const path of ['/v1/rooms/cl/messages', '/v1/rooms/cl/kick', '/no/such/route']) {
      const lengths = [`Content-Length: 0\r\nContent-Length: ${smuggled.length}\r\n`, `Content-Length: ${smuggled.length}\r\nContent-Length: 0\r\n`];
      for (const order of lengths) {
        // Something pipelined behind: uWS drops the connection before the 400 goes out.
        const r = await rawExchange(node.port, head(path, order) + smuggled);
        const what = `${path} ${JSON.stringify(order)}: ${r.text.slice(0, 200)}`;
        expect(r.closed, what).toBe(true);
        expect(r.statuses.filter((s) => s !== 400), what).toEqual([]);
        expect(r.statuses.length, what).toBeLessThanOrEqual(1);
        // Nothing behind it: a 400, then the close.
        const alone = await rawExchange(node.port, head(path, order));
        expect(alone.statuses, `${path} alone: ${alone.text.slice(0, 200)}`).toEqual([400]);
        expect(alone.closed).toBe(true);
        expect(alone.text).toContain('"BAD_REQUEST"');
      }
    }
    // The same value twice is one length, not a conflict.
    const body = JSON.stringify({ kind: 'system', body: 'twice' });
    const same = await rawExchange(node.port, head('/v1/rooms/cl/messages', `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nContent-Length: ${body.length}\r\n`) + body, 1500);
    expect(same.statuses).toEqual([202]);
  });

  it('finding 11: a /v1 POST without the right key gets 401 as soon as its headers are in, and is closed', async () => {
    const before = await metric(node.port, 'roomcast_http_requests_total', { status: '401' });
    const N = 200;
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) => {
        const auth = i % 2 === 0 ? '' : 'Authorization: Bearer wrong-key-0123456789\r\n';
        // 64 KB promised, 100 bytes sent: the body never completes.
        const req = `POST /v1/rooms/early/messages HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 65536\r\n\r\n${'x'.repeat(100)}`;
        return rawExchange(node.port, req, 3000);
      }),
    );
    for (const r of results) {
      expect(r.statuses).toEqual([401]);
      expect(r.closed).toBe(true);
    }
    expect((await metric(node.port, 'roomcast_http_requests_total', { status: '401' })) - before).toBe(N);
    // With the right key the body is still read (and then answered).
    const ok = await rawExchange(node.port, `POST /v1/rooms/early/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${API_KEY}\r\nContent-Length: 65536\r\n\r\n${'x'.repeat(100)}`, 1000);
    expect(ok.statuses).toEqual([]);
    expect(ok.closed).toBe(false);
  });
});
