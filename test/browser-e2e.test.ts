// The dev-mode demo page (public/index.html, on the SDK bundle /roomcast.js) in headless
// Chromium against a real in-process node: two pages chat in one room, likes are counted on
// both, then the node is stopped and a new one started on the same port — and the pages come
// back by themselves, without a reload, and keep working.
//
// Needs the built bundle (public/roomcast.js: `npm test` runs `npm run build` first),
// playwright-core (a devDependency) and /usr/bin/chromium (installed when missing and root).
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../src/package-root.js';
import type { RoomcastNode } from '../src/node.js';
import {
  ensureChromium,
  gate,
  launchChromium,
  openDemo,
  postJson,
  recordDanmaku,
  seen,
  waitDanmaku,
  waitState,
  waitText,
} from './browser-helpers.js';
import { startTestNode, token } from './helpers.js';

const ARTIFACTS = join(packageRoot, 'test-artifacts');
/** The bye's reconnectMs is jittered up to this: kept short so the test is quick. */
const DRAIN_MS = 300;

/** Whether a JWT (HS256) was signed with `secret`. */
function signedWith(jwt: string, secret: string): boolean {
  const [h, p, s] = jwt.split('.');
  return createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url') === s;
}

describe('demo page in headless Chromium', () => {
  let browser: Browser | undefined;
  const nodes: RoomcastNode[] = [];

  beforeAll(() => {
    if (!existsSync(join(packageRoot, 'public', 'roomcast.js'))) {
      throw new Error('public/roomcast.js is missing: run `npm run build` (npm test does) before this test');
    }
    ensureChromium();
  }, 600_000);

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
  });

  it('chats between two pages and survives a server restart without a reload', async ({ onTestFailed }) => {
    let node = await startTestNode({ drainMs: DRAIN_MS }); // no secret: dev mode (/, /roomcast.js, /dev/token)
    nodes.push(node);
    const port = node.port;
    const origin = `http://127.0.0.1:${port}`;
    const room = `e2e-${randomBytes(3).toString('hex')}`;
    const api = (body: Record<string, unknown>) => postJson(port, `/v1/rooms/${room}/messages`, body, { Authorization: 'Bearer dev' });

    browser = await launchChromium();
    // One context per page: each has its own localStorage, so its own uid.
    // The browser keeps HTTP connections alive: a stopped node closes them instead of
    // answering (else /dev/token would hand out tokens signed with its old secret).
    const open = async (name: string): Promise<{ page: Page; errors: string[] }> => {
      const context = await browser!.newContext();
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await recordDanmaku(page);
      await openDemo(page, origin, name, room);
      return { page, errors };
    };
    const [{ page: ann, errors: annErrors }, { page: ben, errors: benErrors }] = await Promise.all([open('Ann'), open('Ben')]);
    const both = (fn: (p: Page) => Promise<unknown>) => Promise.all([fn(ann), fn(ben)]);
    onTestFailed(async () => {
      mkdirSync(ARTIFACTS, { recursive: true });
      for (const [name, p] of [['ann', ann], ['ben', ben]] as const) {
        await p.screenshot({ path: join(ARTIFACTS, `browser-e2e-failed-${name}.png`), fullPage: true, timeout: 5000 }).catch(() => undefined);
      }
    });

    // ---- live: chat, likes, members
    await both((p) => waitState(p, 'live'));
    await both((p) => waitText(p, 'members', '2'));
    await ann.getByTestId('chat-input').fill('hello from Ann');
    await ann.getByTestId('send').click();
    await waitDanmaku(ben, 'hello from Ann');
    await waitDanmaku(ann, 'hello from Ann', 'mine'); // her own comes back, framed
    await ben.getByTestId('like').click();
    await both((p) => waitText(p, 'likes', '1'));

    // ---- a late viewer sees the earlier danmaku at once (the page joins with last: 20)
    const { page: cat, errors: catErrors } = await open('Cat');
    await waitState(cat, 'live');
    await waitDanmaku(cat, 'hello from Ann');
    expect(catErrors).toEqual([]);
    await cat.context().close();

    // ---- restart on the same port
    // The pages' reconnects are held at their token fetch (the page asks /dev/token before
    // every reconnect attempt, since a restarted dev node signs with a new secret) until the
    // new node is up and an API message has been posted: that message is deterministically
    // "sent while the pages were away".
    const held = gate();
    for (const p of [ann, ben]) {
      await p.route(
        (url) => url.pathname === '/dev/token',
        async (route) => {
          await held.promise;
          await route.continue().catch(() => undefined);
        },
      );
    }
    const oldSecret = node.secret;
    await node.stop();
    await both((p) => waitState(p, 'reconnecting'));
    node = await startTestNode({ port, drainMs: DRAIN_MS });
    nodes.push(node);
    const away = await api({ kind: 'system', body: 'posted while the pages were away' });
    expect(away.status).toBe(202);
    held.open();

    try {
      await both((p) => waitState(p, 'live', 30_000));
    } catch (err) {
      // Say why when the cause is a known one: the stopped node still answering the
      // browser's kept-alive HTTP requests, so /dev/token hands out tokens signed with the
      // old secret, which the new node refuses.
      const probe = await ann
        .evaluate(async () => {
          const r = await fetch('/dev/token?uid=probe', { cache: 'no-store', signal: AbortSignal.timeout(5000) });
          return ((await r.json()) as { token: string }).token;
        })
        .catch(() => '');
      if (probe && signedWith(probe, oldSecret)) {
        throw new Error('the pages cannot rejoin: /dev/token on the restarted port was answered by the STOPPED node (old secret)', { cause: err });
      }
      throw err;
    }
    await both((p) => p.unroute((url) => url.pathname === '/dev/token'));

    // With the in-memory bus a restart starts a new epoch: each page rejoined with the
    // since/epoch of the old log, the new node answered recovered:false from its current seq,
    // and the SDK reported the break (`reset`), which the page shows as its note.
    await both((p) => p.getByTestId('missed-note').waitFor({ state: 'visible', timeout: 10_000 }));

    // Messages posted through the API right after the restart, now that the pages are back,
    // show on both; chat and likes work again over the new connections.
    expect((await api({ kind: 'gift', uid: 'sponsor', name: 'Sponsor', body: { gift: 'rocket', count: 2 } })).status).toBe(202);
    expect((await api({ kind: 'system', body: 'welcome back' })).status).toBe(202);
    await both((p) => waitDanmaku(p, 'rocket ×2', 'gift'));
    await both((p) => waitDanmaku(p, 'welcome back', 'sys'));
    await ben.getByTestId('chat-input').fill('back again from Ben');
    await ben.getByTestId('send').click();
    await waitDanmaku(ann, 'back again from Ben');
    await ann.getByTestId('like').click();
    await both((p) => waitText(p, 'likes', '2'));
    await both((p) => waitText(p, 'members', '2'));

    // What is honest to assert about the message posted while the pages were away: it went
    // into the new epoch's log (seq 1) BEFORE the pages rejoined, and a rejoin from another
    // epoch continues from the log's current seq (no replay of the new epoch), so the pages
    // never get it — they say "some messages were missed" instead (asserted above). Batches
    // arrive in seq order, so now that later messages have shown, it is certain it was not
    // shown. If the server ever replays a new epoch from its start, this flips (and is better).
    for (const p of [ann, ben]) {
      expect((await seen(p)).map((d) => d.text)).not.toContain('posted while the pages were away');
    }
    expect(await ann.evaluate(() => (window as unknown as { roomcastDemo: { status(): { lastSeq: number } } }).roomcastDemo.status().lastSeq)).toBeGreaterThanOrEqual(3);

    mkdirSync(ARTIFACTS, { recursive: true });
    await ann.screenshot({ path: join(ARTIFACTS, 'browser-e2e.png'), fullPage: true });
    expect(annErrors).toEqual([]);
    expect(benErrors).toEqual([]);
  }, 60_000);

  it('the SDK bundle refreshes short tokens on one connection, and reconnects with a fresh one after 4010', async () => {
    const node = await startTestNode({ tokenGraceSec: 1 }); // dev mode serves /roomcast.js
    nodes.push(node);
    const origin = `http://127.0.0.1:${node.port}`;
    browser ??= await launchChromium();
    const page = await (await browser.newContext()).newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // The page's getToken asks this route, played by the test as a business backend would:
    // 3-second tokens, and failures on demand.
    const uid = `sdk-${randomBytes(3).toString('hex')}`;
    let served = 0;
    let failNext = 0;
    await page.route(
      (url) => url.pathname === '/test-token',
      async (route) => {
        if (failNext > 0) {
          failNext--;
          return route.fulfill({ status: 503, body: 'down' });
        }
        served++;
        await route.fulfill({ status: 200, contentType: 'text/plain', body: await token(node, { uid, ttlSec: 3 }) });
      },
    );
    await page.goto(`${origin}/healthz`);
    await page.addScriptTag({ url: '/roomcast.js' });
    type Win = { rc: { state: string; info?: { sid: string }; ready(): Promise<void> }; closes: number[] };
    const sid = await page.evaluate(async () => {
      const w = window as unknown as Win & { Roomcast: { connect(o: unknown): Win['rc'] & { on(e: string, f: (s: { closeCode?: number }) => void): void } } };
      w.closes = [];
      const rc = w.Roomcast.connect({
        url: `${location.origin.replace('http', 'ws')}/ws`,
        getToken: async () => {
          const r = await fetch('/test-token', { cache: 'no-store' });
          if (!r.ok) throw new Error(`token service ${r.status}`);
          return r.text();
        },
      });
      rc.on('state', (s) => s.closeCode !== undefined && w.closes.push(s.closeCode));
      rc.on('error', () => undefined);
      w.rc = rc;
      await rc.ready();
      return rc.info!.sid;
    });
    const status = () =>
      page.evaluate(() => {
        const w = window as unknown as Win;
        return { state: w.rc.state, sid: w.rc.info?.sid, closes: w.closes };
      });
    // Three token lifetimes on one connection: refreshed in place.
    await new Promise((r) => setTimeout(r, 7000));
    expect(await status()).toEqual({ state: 'open', sid, closes: [] });
    expect(served).toBeGreaterThanOrEqual(3);
    // The next refresh fails: the server closes with 4010 and the SDK comes back with a fresh token.
    failNext = 1;
    await expect.poll(async () => (await status()).closes, { timeout: 10_000 }).toEqual([4010]);
    const reopened = async () => {
      const s = await status();
      return s.state === 'open' && s.sid !== sid;
    };
    await expect.poll(reopened, { timeout: 10_000 }).toBe(true);
    expect(errors).toEqual([]);
    await page.context().close();
  }, 60_000);
});
