// The hand check of a posted message (api/message-body.ts) accepts only bodies the zod schema
// accepts, reads them the same, and takes the common ones itself.
import { describe, expect, it } from 'vitest';
import { apiMessage, fastMessage } from '../src/api/message-body.js';
import { messageBody } from '../src/api/schemas.js';
import { Rng } from './fuzz-helpers.js';

const VALUES: unknown[] = [
  undefined, null, 0, 1.5, -1, true, false, '', 'a', 'chat', 'gift', 'system', 'like', 'Chat', 'high', 'normal', 'HIGH',
  'x'.repeat(32), 'x'.repeat(33), 'u'.repeat(64), 'u'.repeat(65), 'k-_9', 'bad kind', [], ['a'], {}, { a: 1 }, { nested: { b: [1, 2] } },
];
const KEYS = ['kind', 'body', 'uid', 'name', 'priority', 'x', 'extra', 'Kind'];

describe('fastMessage', () => {
  it('takes the common bodies, in the shape apiMessage builds', () => {
    const cases: Array<[Record<string, unknown>, ReturnType<typeof apiMessage>]> = [
      [{ kind: 'chat', body: 'hi' }, apiMessage('chat', 'hi')],
      [{ kind: 'gift', body: { gift: 'rose' }, uid: 'u1', name: 'Ann' }, apiMessage('gift', { gift: 'rose' }, 'u1', 'Ann', 'high')],
      [{ kind: 'notice', body: 'x', priority: 'high', x: { color: 'red' } }, apiMessage('notice', 'x', undefined, undefined, 'high', { color: 'red' })],
      [{ kind: 'system', body: 'x', priority: 'normal' }, apiMessage('system', 'x', undefined, undefined, 'normal')],
    ];
    for (const [raw, want] of cases) {
      const got = fastMessage(raw);
      expect(got, JSON.stringify(raw)).toEqual(want);
      expect(Object.keys(got!)).toEqual(['kind', 'body', 'uid', 'name', 'priority', 'x']);
    }
  });

  it('accepts nothing the schema refuses, and reads what it accepts as the schema does (20k random bodies)', () => {
    const rng = new Rng(21);
    let fastTaken = 0;
    const wrong: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      const raw: Record<string, unknown> = {};
      // Mostly near-valid bodies: a kind and a body, then random keys with random values.
      if (rng.int(10) > 0) raw.kind = rng.int(4) > 0 ? 'chat' : VALUES[rng.int(VALUES.length)];
      if (rng.int(10) > 0) raw.body = rng.int(4) > 0 ? 'hello' : VALUES[rng.int(VALUES.length)];
      for (let k = rng.int(3); k > 0; k--) {
        const v = VALUES[rng.int(VALUES.length)];
        if (v !== undefined) raw[KEYS[rng.int(KEYS.length)]!] = v;
      }
      const fast = fastMessage(raw);
      if (!fast) continue;
      fastTaken++;
      const res = messageBody.safeParse(raw);
      if (!res.success) {
        wrong.push(JSON.stringify(raw));
        continue;
      }
      const d = res.data;
      expect(fast).toEqual(apiMessage(d.kind, d.body, d.uid, d.name, d.priority, d.x));
    }
    expect(wrong).toEqual([]);
    expect(fastTaken).toBeGreaterThan(1000);
  });

  it('leaves non-objects and arrays to the schema', () => {
    for (const raw of [null, 'chat', 1, [], [{ kind: 'chat', body: 'x' }]]) expect(fastMessage(raw)).toBeUndefined();
  });
});
