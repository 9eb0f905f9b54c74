// Headless Chromium for the browser end-to-end test: the system's /usr/bin/chromium driven by
// playwright-core (which downloads no browser of its own), and small helpers around the demo
// page (public/index.html) and the server's HTTP API.
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/**
 * Makes sure /usr/bin/chromium exists: installs Debian's package when we are root (as CI is),
 * otherwise throws saying what to install. Cheap when it is there.
 */
export function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  const hasAptGet = (() => {
    try {
      execSync('command -v apt-get', { stdio: 'ignore', shell: '/bin/sh' });
      return true;
    } catch {
      return false;
    }
  })();
  if (process.getuid?.() === 0 && hasAptGet) {
    console.log(`${CHROMIUM} missing: installing chromium with apt-get`);
    execSync('apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium', { stdio: 'inherit', shell: '/bin/sh' });
    if (existsSync(CHROMIUM)) return;
  }
  throw new Error(`the browser tests need Chromium at ${CHROMIUM}: install it (e.g. \`sudo apt-get install chromium\`)`);
}

/**
 * Launches headless Chromium. Playwright gives it a fresh, temporary user-data-dir (removed
 * on close), so no profile state carries over between runs.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
}

export interface DanmakuSeen {
  /** the element's classes: `danmaku`, plus `gift`, `sys`, `mine`, `other` */
  cls: string;
  text: string;
}

/**
 * Records every danmaku element the page ever adds to the stage (they remove themselves when
 * their animation ends), so a test can tell what was shown, not only what is still flying.
 * Read it with `seen(page)`.
 */
export async function recordDanmaku(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const log: Array<{ cls: string; text: string }> = [];
    (window as unknown as { __danmaku: typeof log }).__danmaku = log;
    new MutationObserver((muts) => {
      for (const m of muts) {
        m.addedNodes.forEach((n) => {
          if (n instanceof HTMLElement && n.classList.contains('danmaku')) log.push({ cls: n.className, text: n.textContent ?? '' });
        });
      }
    }).observe(document, { childList: true, subtree: true });
  });
}

export function seen(page: Page): Promise<DanmakuSeen[]> {
  return page.evaluate(() => (window as unknown as { __danmaku?: DanmakuSeen[] }).__danmaku ?? []);
}

/** Opens the demo page and joins `room` as `name`. */
export async function openDemo(page: Page, origin: string, name: string, room: string): Promise<void> {
  await page.goto(`${origin}/`, { waitUntil: 'domcontentloaded' });
  await page.getByTestId('name').fill(name);
  await page.getByTestId('room').fill(room);
  await page.getByTestId('join').click();
}

/** Waits until the page's connection pill says `state`. */
export async function waitState(page: Page, state: string, timeout = 20_000): Promise<void> {
  await page.locator(`[data-testid="state"][data-state="${state}"]`).waitFor({ state: 'attached', timeout });
}

/**
 * Waits until the page has shown a danmaku element whose text contains `text` (and that has
 * class `cls` too, e.g. `gift`, `sys`, `mine`, when given). Reads what recordDanmaku logged,
 * so an element that already flew off the stage still counts.
 */
export async function waitDanmaku(page: Page, text: string, cls = '', timeout = 15_000): Promise<void> {
  await page.waitForFunction(
    ([want, c]) =>
      ((window as unknown as { __danmaku?: DanmakuSeen[] }).__danmaku ?? []).some(
        (d) => d.text.includes(want) && (c === '' || d.cls.split(/\s+/).includes(c)),
      ),
    [text, cls] as const,
    { timeout },
  );
}

/** Waits until the element with `testid` reads exactly `text`. */
export async function waitText(page: Page, testid: string, text: string, timeout = 15_000): Promise<void> {
  await page.waitForFunction(
    ([id, want]) => document.querySelector(`[data-testid="${id}"]`)?.textContent?.trim() === want,
    [testid, text] as const,
    { timeout },
  );
}

/**
 * POSTs JSON to the server over a fresh connection (no keep-alive: after a restart on the
 * same port, a pooled connection could still lead to the stopped node).
 */
export function postJson(port: number, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent: false,
        headers: { 'Content-Type': 'application/json', 'Content-Length': String(data.byteLength), ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** A promise with its resolve function outside. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}
