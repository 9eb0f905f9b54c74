// Health endpoints, dev-mode tokens (PROTOCOL §2, §6) and graceful stop (`bye`, §4).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { connect, SECRET, sleep, startTestNode, token, upgradeStatus } from './helpers.js';
import { closeAll, getText, member, request, uniq, user } from './ws-helpers.js';

describe('HTTP: health and dev tokens', () => {
  let dev: RoomcastNode;
  let prod: RoomcastNode;
  beforeAll(async () => {
    dev = await startTestNode({ tickMs: 20 });
    prod = await startTestNode({ tickMs: 20, secret: SECRET });
  });
  afterAll(async () => {
    await dev.stop();
    await prod.stop();
  });

  it('/healthz and /readyz answer 200', async () => {
    for (const node of [dev, prod]) {
      const h = await getText(node.port, '/healthz');
      expect(h.status).toBe(200);
      expect(JSON.parse(h.body)).toEqual({ status: 'ok' });
      const r = await getText(node.port, '/readyz');
      expect(r.status).toBe(200);
    }
  });

  it('dev mode: GET /dev/token mints a token that connects as that uid, with that name', async () => {
    expect(dev.devMode).toBe(true);
    const res = await getText(dev.port, '/dev/token?uid=newcomer&name=New%20Comer');
    expect(res.status).toBe(200);
    const { token: t } = JSON.parse(res.body) as { token: string };
    expect(typeof t).toBe('string');
    const room = uniq('devroom');
    const c = await connect(dev.port, { token: t, room });
    expect(c.frames[0]).toMatchObject({ op: 'welcome', uid: 'newcomer' });
    expect(await request(c, { op: 'send', room, kind: 'chat', body: 'hi' })).toMatchObject({ op: 'ack', shown: true });
    expect((await c.op('batch')).msgs).toEqual([expect.objectContaining({ u: 'newcomer', n: 'New Comer', b: 'hi' })]);
    await closeAll(c);
  });

  it('dev mode: /dev/token refuses a missing or too long uid and a too long name (400)', async () => {
    expect((await getText(dev.port, '/dev/token')).status).toBe(400);
    expect((await getText(dev.port, `/dev/token?uid=${'u'.repeat(65)}`)).status).toBe(400);
    expect((await getText(dev.port, `/dev/token?uid=ok&name=${'n'.repeat(33)}`)).status).toBe(400);
  });

  it('with a secret configured, /dev/token does not exist (404) and its tokens are refused', async () => {
    expect(prod.devMode).toBe(false);
    expect((await getText(prod.port, '/dev/token?uid=x')).status).toBe(404);
    const { token: devToken } = JSON.parse((await getText(dev.port, '/dev/token?uid=x')).body) as { token: string };
    expect(await upgradeStatus(prod.port, { token: devToken })).toBe(401);
    // A token signed with the configured secret works.
    const c = await connect(prod.port, { token: await token(prod, { uid: 'real' }) });
    expect(c.frames[0]).toMatchObject({ op: 'welcome', uid: 'real' });
    await closeAll(c);
  });
});

describe('graceful stop', () => {
  it('node.stop() sends every client `bye {reason, reconnectMs}`, then closes the sockets (1001)', async () => {
    const node = await startTestNode({ tickMs: 20, drainMs: 1000 });
    const room = uniq('bye');
    const { c: a } = await member(node, uniq('a'), room);
    const b = await user(node, uniq('b'));
    const stopped = node.stop('maintenance');
    for (const c of [a, b]) {
      const code = await Promise.race([c.closed, sleep(5000).then(() => -1)]);
      expect(code).toBe(1001);
      const bye = c.frames.find((f) => f.op === 'bye');
      expect(bye).toEqual({ op: 'bye', reason: 'maintenance', reconnectMs: expect.any(Number) });
      expect(bye!.reconnectMs as number).toBeGreaterThanOrEqual(0);
      expect(bye!.reconnectMs as number).toBeLessThanOrEqual(1000);
    }
    await stopped;
    // Stopped: no new connections; stop is idempotent.
    await expect(connect(node.port, { token: await token(node, { uid: 'late' }) })).rejects.toThrow();
    await node.stop();
  });

  it('a message sent just before stop() is still acked and delivered (the drain flushes) before the sockets close', async () => {
    const node = await startTestNode({ tickMs: 200 }); // a long tick: the send is still queued at stop()
    const room = uniq('flush');
    const { c: a } = await member(node, uniq('a'), room);
    const { c: b } = await member(node, uniq('b'), room);
    const ref = 4711;
    a.send({ op: 'send', room, kind: 'chat', body: 'last words', ref });
    await sleep(20);
    await node.stop();
    await Promise.all([a.closed, b.closed]);
    const ack = a.frames.find((f) => f.ref === ref);
    expect(ack).toMatchObject({ op: 'ack', shown: true });
    for (const c of [a, b]) {
      expect(c.frames.some((f) => f.op === 'batch' && (f.msgs as Array<{ b: string }>).some((m) => m.b === 'last words'))).toBe(true);
    }
  });
});
