// The docs and the code agree: every error code, every option with its default.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { envName } from '../src/config/load.js';
import { configSchema } from '../src/config/schema.js';
import { ERRORS } from '../src/protocol/errors.js';

const read = (p: string) => readFileSync(new URL(`../${p}`, import.meta.url), 'utf8');

describe('docs', () => {
  it('docs/protocol.md lists every error code', () => {
    const doc = read('docs/protocol.md');
    for (const code of Object.keys(ERRORS)) expect(doc, code).toContain(`\`${code}\``);
  });

  it('docs/configuration.md documents every option with its env var and default', () => {
    const doc = read('docs/configuration.md');
    for (const [key, field] of Object.entries(configSchema.shape)) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${key}\` `));
      expect(row, key).toBeDefined();
      expect(row).toContain(envName(key));
      expect(row).toContain(`\`${JSON.stringify(field.safeParse(undefined).data)}\``);
    }
  });

  it('README links the project docs', () => {
    const readme = read('README.md');
    for (const link of ['docs/protocol.md', 'docs/architecture.md', 'docs/configuration.md', 'docs/openapi.yaml']) {
      expect(readme).toContain(link);
      expect(read(link).length, link).toBeGreaterThan(200);
    }
  });
});
