// The worker runs on the native uWebSockets.js binary, never on the package's `ws` fallback.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { loadUws, nativeBinaryPath } from '../src/gateway/uws.js';
import { startTestNode, token, wsUrl } from './helpers.js';
import { refusedUpgrade } from './ws-helpers.js';

const require = createRequire(import.meta.url);

/** Modules of the uWS package loaded through Node's CommonJS loader so far. */
function loadedUwsFiles(): string[] {
  return Object.keys(require.cache).filter((p) => p.includes('uws-js-unofficial'));
}

describe('uWebSockets.js native binary', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ tickMs: 20 });
  });
  afterAll(() => node.stop());

  it('nativeBinaryPath names the binary for this platform, arch and Node ABI, and it exists', () => {
    const p = nativeBinaryPath();
    expect(basename(p)).toBe(`uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
    expect(p).toContain('uws-js-unofficial');
    expect(existsSync(p)).toBe(true);
  });

  it('the module the gateway uses is the native addon itself', () => {
    const uws = loadUws();
    expect(uws).toBe(require(nativeBinaryPath()));
    expect(typeof uws.App).toBe('function');
    // The package entry (src/uws.js) and its ws fallback (dist/*.js) were never loaded.
    const files = loadedUwsFiles();
    expect(files).toContain(nativeBinaryPath());
    expect(files.filter((f) => !f.endsWith('.node'))).toEqual([]);
  });

  it('HTTP responses come from uWS (its server header), which the ws fallback never sends', async () => {
    for (const path of ['/healthz', '/readyz', '/no-such-route']) {
      const res = await fetch(`http://127.0.0.1:${node.port}${path}`);
      await res.text();
      expect(res.headers.get('uwebsockets')).toBe('20');
    }
    // A refused upgrade too.
    const refused = await refusedUpgrade(node.port, { token: 'garbage' });
    expect(refused.status).toBe(401);
    expect(refused.headers.uwebsockets).toBe('20');
  });

  it('the WebSocket upgrade (101) is answered by uWS', async () => {
    const t = await token(node, { uid: 'native-check' });
    const ws = new WebSocket(wsUrl(node.port, { token: t }));
    const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      ws.once('upgrade', (res) => resolve(res.headers));
      ws.once('error', reject);
    });
    expect(headers.uwebsockets).toBe('20');
    ws.close();
  });

  it('refuses to start (clear error, no fallback) when no binary matches the Node ABI', async () => {
    const desc = Object.getOwnPropertyDescriptor(process.versions, 'modules')!;
    vi.resetModules();
    Object.defineProperty(process.versions, 'modules', { ...desc, value: '1' });
    try {
      const fresh = await import('../src/gateway/uws.js');
      expect(fresh.loadUws).not.toBe(loadUws); // a fresh module instance, nothing cached
      expect(fresh.nativeBinaryPath()).toMatch(/uws_\w+_\w+_1\.node$/);
      expect(() => fresh.loadUws()).toThrow(/native binary not found.*Node ABI 1\b.*refuses to run on the package's ws fallback/s);
      // A whole node refuses to start rather than falling back.
      const helpers = await import('./helpers.js');
      await expect(helpers.startTestNode({ tickMs: 20 })).rejects.toThrow(/native binary not found/);
    } finally {
      Object.defineProperty(process.versions, 'modules', desc);
      vi.resetModules();
    }
    expect(loadedUwsFiles().filter((f) => !f.endsWith('.node'))).toEqual([]);
  });
});
