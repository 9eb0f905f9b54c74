// The issue-14 docs stay true: every finding in security.md, every new option in its limits
// table, every new metric in protocol.md §8.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../src/config/schema.js';

const read = (p: string) => readFileSync(new URL(`../${p}`, import.meta.url), 'utf8');
const NEW_OPTIONS = ['guestRooms', 'frameRate', 'frameBurst', 'modRate', 'modBurst', 'maxModerationEntries'] as const;

describe('issue-14 docs', () => {
  it('security.md lists findings 1-14 and the checklist covers them', () => {
    const doc = read('docs/security.md');
    const findings = doc.slice(doc.indexOf('## Findings'));
    for (let n = 1; n <= 14; n++) expect(findings, `finding ${n}`).toMatch(new RegExp(`^${n}\\. \\S`, 'm'));
    const checklist = doc.slice(doc.indexOf('## Production checklist'), doc.indexOf('## Evidence'));
    for (let n = 1; n <= 14; n++) expect(checklist, `finding ${n} in the checklist`).toMatch(new RegExp(`^\\| ${n} \\| \\S`, 'm'));
  });

  it('the new options are in the security limits table and exist in the schema', () => {
    const doc = read('docs/security.md');
    for (const key of NEW_OPTIONS) {
      expect(Object.keys(configSchema.shape)).toContain(key);
      expect(doc, key).toMatch(new RegExp(`^\\|[^\\n]*\`${key}\``, 'm'));
    }
  });

  it('protocol.md §8 names the new metrics and the token subprotocol', () => {
    const doc = read('docs/protocol.md');
    for (const s of ['roomcast_dev_mode', 'roomcast_moderation_entries{table}', 'roomcast.token.<jwt>', 'frameRate', 'modRate']) expect(doc, s).toContain(s);
  });
});
