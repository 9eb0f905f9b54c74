// Content review (PROTOCOL §4 "Content review", docs/protocol.md §8): the blocklist refuses
// chat at ingress; the review webhook, a real local HTTP server here, is called once per tick
// with all candidate chat and answers which ids to refuse; failures apply the policy.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, joinedClient, sleep, startTestNode, SECRET, type Client } from './helpers.js';
import { chat, delivered, eventually, metric, nextRef, postShown, request, waitMsg } from './api-helpers.js';

const BASE = { apiKey: API_KEY, secret: SECRET, chatRate: 100, chatBurst: 100 } as const;

interface ReviewMessage {
  id: number;
  room: string;
  uid: string;
  name?: string;
  kind: string;
  body: unknown;
}

type Handler = (messages: ReviewMessage[], res: ServerResponse, req: IncomingMessage) => void | Promise<void>;

/** A reviewer: records every request per path; a handler per path decides the answer. */
class Reviewer {
  readonly calls = new Map<string, ReviewMessage[][]>();
  readonly handlers = new Map<string, Handler>();
  private server!: Server;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = req.url ?? '/';
        let messages: ReviewMessage[] = [];
        try {
          const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { messages: ReviewMessage[] };
          messages = parsed.messages;
        } catch {
          messages = [];
        }
        const list = this.calls.get(path) ?? [];
        list.push(messages);
        this.calls.set(path, list);
        res.on('error', () => undefined);
        const h = this.handlers.get(path) ?? approveAll;
        void Promise.resolve(h(messages, res, req)).catch(() => undefined);
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  count(path: string): number {
    return this.calls.get(path)?.length ?? 0;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const answer = (res: ServerResponse, status: number, body: unknown) => {
  if (res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const approveAll: Handler = (_m, res) => answer(res, 200, { reject: [] });

/** Sends a chat without waiting; resolves with the reply. */
function sendChat(c: Client, room: string, body: string): Promise<Record<string, unknown>> {
  const ref = nextRef();
  c.send({ op: 'send', room, kind: 'chat', body, ref });
  return c.reply(ref, 5000);
}

describe('the blocklist', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ ...BASE, tickMs: 20, blocklist: ['badword', 'evil.com'] });
  });
  afterAll(() => node?.stop());

  it('refuses chat containing a listed word, in any case, with REJECTED; other chat passes', async () => {
    const a = await joinedClient(node, 'a', 'bl');
    const b = await joinedClient(node, 'b', 'bl');
    const rejectedBefore = await metric(node, 'roomcast_messages_received_total', { kind: 'chat', result: 'rejected' });
    for (const body of ['badword', 'this has a BadWord inside', 'BADWORD!', 'visit evil.com now']) {
      expect(await chat(a, 'bl', body), body).toMatchObject({ op: 'error', code: 'REJECTED' });
    }
    // Words are literal: "." is not a wildcard.
    expect(await chat(a, 'bl', 'visit evilxcom now')).toMatchObject({ op: 'ack', shown: true });
    expect(await chat(a, 'bl', 'a good word')).toMatchObject({ op: 'ack', shown: true });
    await waitMsg(b, 'bl', (m) => m.b === 'a good word');
    const seen = delivered(b, 'bl').map((m) => m.b);
    expect(seen).toEqual(['visit evilxcom now', 'a good word']);
    expect(await metric(node, 'roomcast_messages_received_total', { kind: 'chat', result: 'rejected' })).toBe(rejectedBefore + 4);
    await Promise.all([a.close(), b.close()]);
  });

  it('does not apply to API messages, whatever their priority (the backend vouches for them)', async () => {
    const b = await joinedClient(node, 'b2', 'bl-api');
    await postShown(node, 'bl-api', { kind: 'quiz', body: 'a badword from the backend', priority: 'normal' });
    await waitMsg(b, 'bl-api', (m) => m.b === 'a badword from the backend');
    await b.close();
  });
});

describe('the review webhook', () => {
  const reviewer = new Reviewer();
  beforeAll(() => reviewer.start());
  afterAll(() => reviewer.stop());

  describe('batching and verdicts', () => {
    let node: RoomcastNode;
    beforeAll(async () => {
      node = await startTestNode({ ...BASE, tickMs: 200, reviewUrl: reviewer.url('/batch'), reviewTimeoutMs: 3000 });
    });
    afterAll(() => node?.stop());
    afterEach(() => reviewer.handlers.delete('/batch'));

    /**
     * Makes the sends of `fill` land in one tick: a primer chat starts a tick whose review
     * the reviewer holds; meanwhile the others are queued (a pong after each send proves the
     * server has it), then the hold is released and the next tick reviews them all at once.
     */
    async function inOneTick(primer: Client, room: string, fill: () => Array<Promise<Record<string, unknown>>>, verdict: Handler) {
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      const first = reviewer.count('/batch');
      reviewer.handlers.set('/batch', async (messages, res, req) => {
        if (messages.some((m) => m.body === 'primer')) {
          await held;
          return approveAll(messages, res, req);
        }
        return verdict(messages, res, req);
      });
      const primed = sendChat(primer, room, 'primer');
      await eventually(() => reviewer.count('/batch') > first, 3000, 'the primer review');
      const replies = fill();
      return { primed, replies, release, first };
    }

    it('is called once per tick with all candidate chat of every room, and delivers what it approves', async () => {
      const primer = await joinedClient(node, 'primer', 'rv-1');
      const a = await joinedClient(node, 'ann', 'rv-1', { name: 'Ann' });
      const b = await joinedClient(node, 'bob', 'rv-1');
      const c = await joinedClient(node, 'cid', 'rv-2');
      const { primed, replies, release, first } = await inOneTick(primer, 'rv-1', () => [
        sendChat(a, 'rv-1', 'hello from ann'),
        sendChat(b, 'rv-1', 'hello from bob'),
        sendChat(c, 'rv-2', 'hello from cid'),
      ], approveAll);
      // The server has queued the three chats (each socket is read in order).
      await Promise.all([a, b, c].map((x) => request(x, { op: 'ping' })));
      release();
      expect(await primed).toMatchObject({ op: 'ack', shown: true });
      for (const r of await Promise.all(replies)) expect(r).toMatchObject({ op: 'ack', shown: true });

      const calls = reviewer.calls.get('/batch')!.slice(first);
      expect(calls).toHaveLength(2); // the primer's tick and one for the three: never one per message
      const batch = calls[1]!;
      expect(batch).toHaveLength(3);
      const byBody = [...batch].sort((x, y) => String(x.body).localeCompare(String(y.body)));
      expect(byBody).toEqual([
        { id: expect.any(Number), room: 'rv-1', uid: 'ann', name: 'Ann', kind: 'chat', body: 'hello from ann' },
        { id: expect.any(Number), room: 'rv-1', uid: 'bob', kind: 'chat', body: 'hello from bob' },
        { id: expect.any(Number), room: 'rv-2', uid: 'cid', kind: 'chat', body: 'hello from cid' },
      ]);
      expect(new Set(batch.map((m) => m.id)).size).toBe(3);

      await waitMsg(primer, 'rv-1', (m) => m.b === 'hello from bob');
      await waitMsg(primer, 'rv-1', (m) => m.b === 'hello from ann');
      await waitMsg(c, 'rv-2', (m) => m.b === 'hello from cid');
      await Promise.all([primer, a, b, c].map((x) => x.close()));
    });

    it('refuses the ids it lists with REJECTED and delivers the rest', async () => {
      const primer = await joinedClient(node, 'primer2', 'rv-3');
      const a = await joinedClient(node, 'ann2', 'rv-3');
      const b = await joinedClient(node, 'bob2', 'rv-3');
      const c = await joinedClient(node, 'cid2', 'rv-3');
      const rejectedBefore = await metric(node, 'roomcast_messages_received_total', { kind: 'chat', result: 'rejected' });
      const nope: Handler = (messages, res) => answer(res, 200, { reject: messages.filter((m) => String(m.body).includes('nope')).map((m) => m.id) });
      const { primed, replies, release, first } = await inOneTick(primer, 'rv-3', () => [
        sendChat(a, 'rv-3', 'nope, this is bad'),
        sendChat(b, 'rv-3', 'this is fine'),
        sendChat(c, 'rv-3', 'nope again'),
      ], nope);
      await Promise.all([a, b, c].map((x) => request(x, { op: 'ping' })));
      release();
      await primed;
      const [ra, rb, rc] = await Promise.all(replies);
      expect(ra).toMatchObject({ op: 'error', code: 'REJECTED' });
      expect(rb).toMatchObject({ op: 'ack', shown: true });
      expect(rc).toMatchObject({ op: 'error', code: 'REJECTED' });
      expect(reviewer.calls.get('/batch')!.slice(first)[1]).toHaveLength(3);

      await waitMsg(primer, 'rv-3', (m) => m.b === 'this is fine');
      const marker = await postShown(node, 'rv-3', { kind: 'system', body: 'marker' });
      await primer.waitFor((f) => f.op === 'batch' && (f.to as number) >= marker);
      expect(delivered(primer, 'rv-3').map((m) => m.b).filter((b2) => String(b2).includes('nope'))).toEqual([]);
      expect(await metric(node, 'roomcast_messages_received_total', { kind: 'chat', result: 'rejected' })).toBe(rejectedBefore + 2);
      await Promise.all([primer, a, b, c].map((x) => x.close()));
    });

    it('is not called for ticks without candidate chat, nor for API messages of any priority', async () => {
      const c = await joinedClient(node, 'quiet', 'rv-4');
      const before = reviewer.count('/batch');
      await postShown(node, 'rv-4', { kind: 'system', body: 'announcement' });
      // docs/openapi.yaml and docs/protocol.md §8: the backend vouches for its messages.
      await postShown(node, 'rv-4', { kind: 'quiz', body: 'normal priority', priority: 'normal' });
      await postShown(node, 'rv-4', { kind: 'gift', body: 'g' });
      await waitMsg(c, 'rv-4', (m) => m.b === 'g');
      await sleep(500); // two idle ticks
      expect(reviewer.count('/batch')).toBe(before);
      await c.close();
    });

    it('counts successful calls as roomcast_review_calls_total{outcome="ok"}', async () => {
      const c = await joinedClient(node, 'counted', 'rv-5');
      const before = await metric(node, 'roomcast_review_calls_total', { outcome: 'ok' });
      expect(await chat(c, 'rv-5', 'count me')).toMatchObject({ op: 'ack', shown: true });
      expect(await metric(node, 'roomcast_review_calls_total', { outcome: 'ok' })).toBe(before + 1);
      expect(await metric(node, 'roomcast_review_calls_total', { outcome: 'timeout' })).toBe(0);
      expect(await metric(node, 'roomcast_review_calls_total', { outcome: 'error' })).toBe(0);
      await c.close();
    });
  });

  describe('failures', () => {
    const nodes: RoomcastNode[] = [];
    const start = async (path: string, extra: Record<string, unknown>) => {
      const n = await startTestNode({ ...BASE, tickMs: 20, reviewUrl: reviewer.url(path), reviewTimeoutMs: 150, ...extra });
      nodes.push(n);
      return n;
    };
    afterAll(async () => {
      await Promise.all(nodes.map((n) => n.stop()));
    });

    // A slow reviewer that would refuse everything: if the timeout were not applied, the
    // chat would be REJECTED; fail-open must deliver it.
    beforeAll(() => {
      reviewer.handlers.set('/slow-reject', async (m, res) => {
        await sleep(800);
        answer(res, 200, { reject: m.map((x) => x.id) });
      });
      reviewer.handlers.set('/slow-approve', async (_m, res) => {
        await sleep(800);
        answer(res, 200, { reject: [] });
      });
      reviewer.handlers.set('/error-reject', (m, res) => answer(res, 500, { reject: m.map((x) => x.id) }));
      reviewer.handlers.set('/error-approve', (_m, res) => answer(res, 500, { reject: [] }));
      reviewer.handlers.set('/malformed', (_m, res) => answer(res, 200, { ok: true }));
    });

    it('a timeout under fail-open (the default) delivers the chat and counts outcome="timeout"', async () => {
      const node = await start('/slow-reject', {});
      const a = await joinedClient(node, 'a', 'f1');
      const b = await joinedClient(node, 'b', 'f1');
      // The reviewer would refuse it, but answers after the timeout: the policy decides.
      expect(await chat(a, 'f1', 'through anyway')).toMatchObject({ op: 'ack', shown: true });
      await waitMsg(b, 'f1', (m) => m.b === 'through anyway');
      expect(await metric(node, 'roomcast_review_calls_total', { outcome: 'timeout' })).toBe(1);
      expect(await metric(node, 'roomcast_review_calls_total', { outcome: 'ok' })).toBe(0);
      await Promise.all([a.close(), b.close()]);
    });

    it('a timeout under fail-closed refuses the chat with REJECTED', async () => {
      const node = await start('/slow-approve', { reviewFailOpen: false });
      const a = await joinedClient(node, 'a', 'f2');
      const b = await joinedClient(node, 'b', 'f2');
      // The reviewer would approve it, but answers after the timeout: the policy decides.
      expect(await chat(a, 'f2', 'held back')).toMatchObject({ op: 'error', code: 'REJECTED' });
      const marker = await postShown(node, 'f2', { kind: 'system', body: 'marker' });
      await b.waitFor((f) => f.op === 'batch' && (f.to as number) >= marker);
      expect(delivered(b, 'f2').map((m) => m.b)).toEqual(['marker']);
      expect(await metric(node, 'roomcast_review_calls_total', { outcome: 'timeout' })).toBe(1);
      await Promise.all([a.close(), b.close()]);
    });

    it('a 500 answer is a failure, whatever its body: fail-open delivers', async () => {
      const node = await start('/error-reject', {});
      const a = await joinedClient(node, 'a', 'f3');
      expect(await chat(a, 'f3', 'reviewer is down')).toMatchObject({ op: 'ack', shown: true });
      await waitMsg(a, 'f3', (m) => m.b === 'reviewer is down');
      expect(await metric(node, 'roomcast_review_calls_total', { outcome: 'error' })).toBe(1);
      await a.close();
    });

    it('a 500 answer is a failure, whatever its body: fail-closed refuses', async () => {
      const node = await start('/error-approve', { reviewFailOpen: false });
      const a = await joinedClient(node, 'a', 'f4');
      expect(await chat(a, 'f4', 'reviewer is down')).toMatchObject({ op: 'error', code: 'REJECTED' });
      expect(await metric(node, 'roomcast_review_calls_total', { outcome: 'error' })).toBe(1);
      await a.close();
    });

    it('a malformed answer (no reject list) is a failure', async () => {
      const node = await start('/malformed', { reviewFailOpen: false });
      const a = await joinedClient(node, 'a', 'f5');
      expect(await chat(a, 'f5', 'who knows')).toMatchObject({ op: 'error', code: 'REJECTED' });
      expect(await metric(node, 'roomcast_review_calls_total', { outcome: 'error' })).toBe(1);
      await a.close();
    });

    it('an unreachable reviewer is a failure', async () => {
      const closed = createServer();
      await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
      const port = (closed.address() as AddressInfo).port;
      await new Promise<void>((r) => closed.close(() => r()));
      const node = await startTestNode({ ...BASE, tickMs: 20, reviewUrl: `http://127.0.0.1:${port}/gone`, reviewFailOpen: false });
      nodes.push(node);
      const a = await joinedClient(node, 'a', 'f6');
      expect(await chat(a, 'f6', 'anyone?')).toMatchObject({ op: 'error', code: 'REJECTED' });
      expect(await metric(node, 'roomcast_review_calls_total', { outcome: 'error' })).toBe(1);
      await a.close();
    });
  });

  describe('a slow reviewer', () => {
    let node: RoomcastNode;
    beforeAll(async () => {
      node = await startTestNode({ ...BASE, tickMs: 20, reviewUrl: reviewer.url('/slow'), reviewTimeoutMs: 5000 });
    });
    afterAll(() => node?.stop());

    it('holds back only the chat under review: other rooms and high-priority messages go out meanwhile', async () => {
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      reviewer.handlers.set('/slow', async (messages, res, req) => {
        await held;
        approveAll(messages, res, req);
      });
      const a = await joinedClient(node, 'a', 'chatty');
      const b = await joinedClient(node, 'b', 'elsewhere');
      const pending = sendChat(a, 'chatty', 'under review');
      await eventually(() => reviewer.count('/slow') > 0, 3000, 'the review call');
      const t0 = Date.now();
      const seq = await postShown(node, 'elsewhere', { kind: 'system', body: 'the show starts' });
      await waitMsg(b, 'elsewhere', (m) => m.b === 'the show starts');
      await postShown(node, 'chatty', { kind: 'gift', body: 'rose' });
      await waitMsg(a, 'chatty', (m) => m.b === 'rose');
      // Both went out while the webhook still held its answer.
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(seq).toBeGreaterThan(0);
      release();
      expect(await pending).toMatchObject({ op: 'ack', shown: true });
      await waitMsg(a, 'chatty', (m) => m.b === 'under review');
      await Promise.all([a.close(), b.close()]);
    });
  });
});
