// The docs and the code agree: every error code, every option with its default.
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { envName } from '../src/config/load.js';
import { configSchema } from '../src/config/schema.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { ERRORS } from '../src/protocol/errors.js';

const read = (p: string) => readFileSync(new URL(`../${p}`, import.meta.url), 'utf8');

describe('docs', () => {
  it('docs/protocol.md lists every error code', () => {
    const doc = read('docs/protocol.md');
    for (const code of Object.keys(ERRORS)) expect(doc, code).toContain(`\`${code}\``);
  });

  it('docs/protocol.md names every metric a worker exports (§7 without the prefix, §8 with it)', () => {
    const doc = read('docs/protocol.md');
    const registry = new Registry();
    createMetrics(registry, { defaultMetrics: false });
    const names = registry.getMetricsAsArray().map((m) => m.name);
    expect(names).toContain('roomcast_fanout_seconds');
    for (const name of names) expect(doc.includes(`\`${name}`) || doc.includes(`\`${name.replace(/^roomcast_/, '')}`), name).toBe(true);
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

  it('docs/protocol.md states the members-push rule the code applies', () => {
    const code = read('src/rooms/members-push.ts');
    for (const c of ['const CHANGE = 0.01;', 'const MAX_CHANGE = 0.25;', 'const MEMBERS_PER_STEP = 10_000;']) expect(code).toContain(c);
    const doc = read('docs/protocol.md').replace(/\s+/g, ' ');
    expect(doc).toContain('by at least 1 % (and at least 1) in a room of up to 10k members');
    expect(doc).toContain('by 25 % from 50k members');
    expect(doc).toContain('~5 × N however long the ramp takes');
  });

  it('docs/architecture.md names the token library the code uses (fast-jwt, not jose)', () => {
    expect(read('src/auth/tokens.ts')).toContain("from 'fast-jwt'");
    const arch = read('docs/architecture.md');
    expect(arch).toContain('fast-jwt');
    expect(arch).not.toMatch(/\bjose\b/);
  });

  it('docs/architecture.md describes the recovery replay as paced by the socket, as the code does', () => {
    const rooms = read('src/engine/rooms.ts');
    expect(rooms).toContain('c.drained(this.o.replayBufferBytes)');
    expect(read('src/engine/engine.ts')).toContain('replayBufferBytes: Math.floor(c.maxBackpressure / 4)');
    const arch = read('docs/architecture.md');
    expect(arch).toContain('the replay is **paced**');
    expect(arch).toContain('a quarter of `maxBackpressure`');
  });

  it('API messages skip content review, in the code and in both API docs', () => {
    // Ingress queues client chat with the review flag; the engine's API actions queue API messages without it.
    expect(read('src/engine/ingress.ts')).toContain("this.o.outboxes.addNormal(op.room, { msg, reply, review: true })");
    expect(read('src/engine/api-actions.ts')).toContain('else this.o.outboxes.addNormal(room, { msg, reply: resolve });');
    const openapi = read('docs/openapi.yaml');
    expect(openapi).toContain('API messages of any priority skip content review');
    expect(openapi).not.toMatch(/Normal-priority messages also pass the review/);
    expect(read('docs/protocol.md')).toContain('API messages never pass content review');
  });

  it('the SDK says what the server does with a re-joining member: unsubscribed until its replay caught up', () => {
    expect(read('src/engine/rooms.ts')).toMatch(/replay caught up[^]*c\.unsubscribe\(room\);/);
    for (const f of ['client.ts', 'room-seq.ts']) expect(read(`src/client/${f}`)).not.toContain('stays subscribed');
    expect(read('src/client/room-seq.ts')).toContain('holds live batches back from a re-joining member');
  });

  it('the README tour shows refresh and disconnect; docs/security.md covers the session options', () => {
    const readme = read('README.md');
    expect(readme).toContain("op: 'refresh'");
    expect(readme).toMatch(/\/v1\/users\/\w+\/disconnect/);
    const security = read('docs/security.md');
    for (const o of ['trustProxy', 'maxConnsPerUser', 'tokenGraceSec', 'multiply across nodes', '/v1/users/:uid/disconnect']) {
      expect(security, o).toContain(o);
    }
  });
});
