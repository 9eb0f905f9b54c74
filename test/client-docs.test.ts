// docs/sdk.md and the SDK agree: every error code, event and option is documented, the
// SDK's server codes are the server's, and the getting-started example runs as written.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { CLIENT_ERROR_CODES, SERVER_ERROR_CODES } from '../src/client/index.js';
import { ERRORS } from '../src/protocol/errors.js';
import { startTestNode } from './helpers.js';

const read = (p: string) => readFileSync(new URL(`../${p}`, import.meta.url), 'utf8');
const doc = read('docs/sdk.md');

/** Member names of `export interface <name> { ... }` in a source file. */
function members(file: string, iface: string): string[] {
  const src = read(file);
  const body = new RegExp(`export interface ${iface} \\{([\\s\\S]*?)\\n\\}`).exec(src)?.[1] ?? '';
  return [...body.matchAll(/^ {2}(\w+)\??:/gm)].map((m) => m[1]!);
}

describe('docs/sdk.md', () => {
  it('the SDK knows exactly the server error codes', () => {
    expect([...SERVER_ERROR_CODES].sort()).toEqual(Object.keys(ERRORS).sort());
  });

  it('the SDK imports no server code: only src/protocol wire definitions and the one backoff', async () => {
    const { readdirSync } = await import('node:fs');
    const allowed = new Set(['../protocol/errors.js', '../protocol/ops.js', '../util/backoff.js']);
    for (const f of readdirSync(new URL('../src/client/', import.meta.url)).filter((n) => n.endsWith('.ts'))) {
      for (const m of read(`src/client/${f}`).matchAll(/from '(\.\.\/[^']+)'/g)) expect(allowed, `${f}: ${m[1]}`).toContain(m[1]);
    }
    for (const f of ['src/protocol/errors.ts', 'src/protocol/ops.ts', 'src/util/backoff.ts']) expect(read(f), f).not.toMatch(/^import /m);
  });

  it('lists every error code, event and connect option', () => {
    for (const code of [...SERVER_ERROR_CODES, ...CLIENT_ERROR_CODES]) expect(doc, code).toMatch(new RegExp(`^\\| \`${code}\` \\|`, 'm'));
    const events = members('src/client/types.ts', 'ClientEvents');
    expect(events).toContain('batch');
    for (const e of events) expect(doc, e).toMatch(new RegExp(`^\\| \`${e}\` \\|`, 'm'));
    const options = members('src/client/client.ts', 'ConnectOptions');
    expect(options).toContain('getToken');
    for (const o of options) expect(doc, o).toContain(`\`${o}\``);
  });

  describe('the getting-started example', () => {
    const example = /```js\n([\s\S]*?)```/.exec(doc)![1]!;
    const dir = mkdtempSync(join(tmpdir(), 'roomcast-sdk-doc-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('is about 20 lines', () => {
      expect(example.trim().split('\n').length).toBeLessThanOrEqual(22);
    });

    it('runs as written against a dev-mode server', async () => {
      const node = await startTestNode();
      const lines: string[] = [];
      const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
      try {
        expect(node.devMode).toBe(true);
        const index = fileURLToPath(new URL('../src/client/index.ts', import.meta.url));
        const src = example
          .replace(`from 'roomcast/client'`, `from ${JSON.stringify(index)}`)
          .replace('http://localhost:8080', `http://127.0.0.1:${node.port}`);
        expect(src).toContain(index);
        const file = join(dir, 'chat.mjs');
        writeFileSync(file, `${src}\nexport { rc };\n`);
        const mod = (await import(file)) as { rc: { close(): Promise<void> } };
        await expect.poll(() => lines, { timeout: 5000 }).toEqual(
          expect.arrayContaining(['[open] ', 'in lobby with 1 members', 'sent as #1', '#1 Ann: hello from the SDK', '#2 +1 likes']),
        );
        await mod.rc.close();
      } finally {
        log.mockRestore();
        await node.stop();
      }
    });
  });
});
