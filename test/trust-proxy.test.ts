// --trust-proxy: the per-IP upgrade limit uses X-Forwarded-For / Forwarded only when the TCP
// peer is a trusted proxy. Spoofed headers from anyone else change nothing.
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { createClientIp } from '../src/gateway/client-ip.js';
import { startTestNode, wsUrl } from './helpers.js';

/** Tries an upgrade with extra headers; resolves with 101 (then closes) or the refusal status. */
function upgrade(port: number, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(port, {}), { headers });
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    ws.once('error', reject);
  });
}

const LIMIT = { allowGuests: true, guestRooms: ['*'], connectRate: 0.01, connectBurst: 2 } as const;

describe('behind a proxy', () => {
  const nodes: RoomcastNode[] = [];
  let untrusted: RoomcastNode;
  let otherProxy: RoomcastNode;
  let trusted: RoomcastNode;
  beforeAll(async () => {
    untrusted = await startTestNode(LIMIT);
    otherProxy = await startTestNode({ ...LIMIT, trustProxy: ['10.0.0.0/8', '::1'] });
    trusted = await startTestNode({ ...LIMIT, trustProxy: ['127.0.0.1/32'] });
    nodes.push(untrusted, otherProxy, trusted);
  });
  afterAll(() => Promise.all(nodes.map((n) => n.stop())));

  it.each([
    ['no --trust-proxy', () => untrusted],
    ['a peer outside --trust-proxy', () => otherProxy],
  ])('with %s, spoofed X-Forwarded-For and Forwarded headers do not escape the per-IP limit', async (_name, node) => {
    const port = node().port;
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      statuses.push(await upgrade(port, { 'x-forwarded-for': `203.0.113.${i + 1}`, forwarded: `for=198.51.100.${i + 1}` }));
    }
    expect(statuses).toEqual([101, 101, 429, 429]);
  });

  it('from a trusted proxy, each forwarded client has its own limit', async () => {
    const port = trusted.port;
    const a = `203.0.113.${10 + (process.pid % 100)}`;
    expect([await upgrade(port, { 'x-forwarded-for': a }), await upgrade(port, { 'x-forwarded-for': a }), await upgrade(port, { 'x-forwarded-for': a })]).toEqual([
      101, 101, 429,
    ]);
    // Another client behind the same proxy, named by X-Forwarded-For or by Forwarded.
    expect(await upgrade(port, { 'x-forwarded-for': '198.51.100.7' })).toBe(101);
    expect(await upgrade(port, { forwarded: 'for="[2001:db8::7]:4711";proto=https' })).toBe(101);
    // A client that prepends its own "X-Forwarded-For: <someone else>" is still itself: the
    // proxy appends the address it saw, and that is the rightmost untrusted hop.
    expect(await upgrade(port, { 'x-forwarded-for': `192.0.2.1, ${a}` })).toBe(429);
  });
});

describe('createClientIp', () => {
  const ip = createClientIp(['10.0.0.0/8', '192.168.1.1', '2001:db8:ffff::/48']);

  it('uses the peer when it is not trusted, whatever the headers say', () => {
    expect(ip('203.0.113.9', { 'x-forwarded-for': '1.2.3.4' })).toBe('203.0.113.9');
    expect(ip('::ffff:203.0.113.9', { forwarded: 'for=1.2.3.4' })).toBe('203.0.113.9');
  });

  it('walks X-Forwarded-For right to left past trusted hops', () => {
    expect(ip('10.1.2.3', { 'x-forwarded-for': '1.1.1.1, 2.2.2.2, 192.168.1.1' })).toBe('2.2.2.2');
    expect(ip('10.1.2.3', { 'x-forwarded-for': '10.9.9.9' })).toBe('10.9.9.9'); // only proxies: the leftmost
    expect(ip('10.1.2.3', { 'x-forwarded-for': '1.1.1.1:5555' })).toBe('1.1.1.1');
    expect(ip('10.1.2.3', { 'x-forwarded-for': '1.1.1.1, garbage' })).toBe('10.1.2.3'); // unparseable: the last address vouched for
    expect(ip('10.1.2.3', {})).toBe('10.1.2.3');
  });

  it('reads Forwarded for= (quoted, bracketed IPv6 with port) when there is no X-Forwarded-For', () => {
    expect(ip('2001:db8:ffff::1', { forwarded: 'for="[2001:DB8::1]:80";proto=https, for=10.0.0.2' })).toBe('2001:db8::1');
    expect(ip('10.0.0.1', { forwarded: 'for=unknown' })).toBe('10.0.0.1');
  });

  it('without trusted proxies is the normalised peer', () => {
    expect(createClientIp([])('::ffff:127.0.0.1', { 'x-forwarded-for': '1.2.3.4' })).toBe('127.0.0.1');
  });
});
