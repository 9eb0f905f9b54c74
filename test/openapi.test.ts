// docs/openapi.yaml against the code: the routes registered by src/api/routes.ts and the
// documented /v1 operations are the same set, the request schemas are the zod schemas of
// src/api/schemas.ts, and the documented ops routes exist on a running node.
//
// The document is read with a small parser for the block-YAML subset it is written in
// (maps, sequences, quoted and plain scalars, `>`/`|` block scalars, `[]`/`{}`). Anything
// outside that subset is an error, never a silent misread.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { apiRoutes, type RoomControl } from '../src/api/routes.js';
import { broadcastBody, disconnectBody, historyQuery, kickBody, MAX_BODY_ENCODED, MAX_X_ENCODED, messageBody, muteBody, roomId, topQuery, userId } from '../src/api/schemas.js';
import { ROOM_RE } from '../src/protocol/ops.js';
import { SIGNATURE_HEADER, type RoomEvent } from '../src/events/types.js';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, SECRET, startTestNode } from './helpers.js';

// ---------------------------------------------------------------------------------------
// A conservative YAML-subset reader.

type Y = string | number | boolean | null | Y[] | { [k: string]: Y };
type YMap = { [k: string]: Y };

function parseYamlSubset(src: string): Y {
  const lines = src.replace(/\r\n/g, '\n').split('\n');
  let i = 0;
  const fail = (msg: string): never => {
    throw new Error(`yaml subset, line ${i + 1}: ${msg}: ${JSON.stringify(lines[i] ?? '')}`);
  };
  const skippable = (l: string) => /^\s*(#.*)?$/.test(l);
  const peek = (): { indent: number; text: string } | undefined => {
    while (i < lines.length && skippable(lines[i]!)) i++;
    if (i >= lines.length) return undefined;
    const l = lines[i]!;
    if (/^\s*\t/.test(l)) fail('tab indentation');
    return { indent: l.length - l.trimStart().length, text: l.trim() };
  };
  const isItem = (t: string) => t === '-' || t.startsWith('- ');
  const KEY = /^('(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|[^'"\s[\]{}#&*!|>%@`,-][^:#]*?|-[^\s:#][^:#]*?)\s*:(?:\s+|$)/;

  const scalar = (s: string): Y => {
    if (s.startsWith("'")) {
      if (!/^'(?:[^']|'')*'$/.test(s)) fail('bad single-quoted scalar');
      return s.slice(1, -1).replace(/''/g, "'");
    }
    if (s.startsWith('"')) return JSON.parse(s) as string;
    if (s === '{}') return {};
    if (s.startsWith('[')) {
      if (!s.endsWith(']')) fail('multi-line flow sequence');
      const inner = s.slice(1, -1).trim();
      if (/[[\]{}'"]/.test(inner)) fail('nested or quoted flow sequence');
      return inner === '' ? [] : inner.split(',').map((x) => scalar(x.trim()));
    }
    if (/^[{&*!|>%@`#]/.test(s)) fail('unsupported scalar');
    if (/:\s|\s#/.test(s)) fail('plain scalar with ": " or " #" (quote it)');
    if (s === 'true') return true;
    if (s === 'false') return false;
    if (s === 'null' || s === '~') return null;
    if (/^-?(0|[1-9]\d*)(\.\d+)?$/.test(s)) return Number(s);
    return s;
  };

  const blockScalar = (header: string, parentIndent: number): string => {
    const raw: string[] = [];
    while (i < lines.length) {
      const l = lines[i]!;
      if (l.trim() !== '' && l.length - l.trimStart().length <= parentIndent) break;
      raw.push(l);
      i++;
    }
    while (raw.length && raw[raw.length - 1]!.trim() === '') raw.pop();
    const ind = Math.min(...raw.filter((l) => l.trim()).map((l) => l.length - l.trimStart().length));
    const body = raw.map((l) => l.slice(ind));
    let text: string;
    if (header.startsWith('|')) text = body.join('\n');
    else {
      const paras: string[][] = [[]];
      for (const l of body) {
        if (l === '') paras.push([]);
        else paras[paras.length - 1]!.push(l);
      }
      text = paras.map((p) => p.join(' ')).join('\n');
    }
    return header.endsWith('-') ? text : text + '\n';
  };

  const value = (rest: string, indent: number): Y => {
    if (rest === '') {
      const p = peek();
      if (!p) return null;
      if (p.indent > indent) return node();
      if (p.indent === indent && isItem(p.text)) return seq(indent);
      return null;
    }
    if (/^[|>]-?$/.test(rest)) return blockScalar(rest, indent);
    return scalar(rest);
  };

  const map = (indent: number): YMap => {
    const out: YMap = {};
    for (;;) {
      const p = peek();
      if (!p || p.indent < indent) return out;
      if (p.indent > indent) fail('unexpected indentation');
      if (isItem(p.text)) return out;
      const m = KEY.exec(p.text);
      if (!m) fail('expected "key: value"');
      const key = scalar(m![1]!.trim());
      if (typeof key !== 'string' && typeof key !== 'number') fail('bad key');
      const k = String(key);
      if (k in out) fail(`duplicate key ${k}`);
      i++;
      out[k] = value(p.text.slice(m![0].length).trim(), indent);
    }
  };

  const seq = (indent: number): Y[] => {
    const out: Y[] = [];
    for (;;) {
      const p = peek();
      if (!p || p.indent !== indent || !isItem(p.text)) {
        if (p && p.indent > indent) fail('unexpected indentation');
        return out;
      }
      const rest = p.text.slice(1).trimStart();
      if (rest === '') {
        i++;
        out.push(node());
      } else if (KEY.test(rest)) {
        // "- key: value": the item is a map whose keys line up with `key`.
        const col = indent + (p.text.length - rest.length);
        lines[i] = ' '.repeat(col) + rest;
        out.push(map(col));
      } else {
        i++;
        out.push(scalar(rest));
      }
    }
  };

  const node = (): Y => {
    const p = peek();
    if (!p) return null;
    return isItem(p.text) ? seq(p.indent) : map(p.indent);
  };

  const doc = node();
  if (peek()) fail('trailing content');
  return doc;
}

// ---------------------------------------------------------------------------------------

const docPath = fileURLToPath(new URL('../docs/openapi.yaml', import.meta.url));
const doc = parseYamlSubset(readFileSync(docPath, 'utf8')) as YMap;
const paths = doc.paths as Record<string, Record<string, YMap>>;
const components = doc.components as Record<string, Record<string, YMap>>;
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

function deref(v: Y): YMap {
  let cur = v as YMap;
  for (let n = 0; n < 10 && typeof cur.$ref === 'string'; n++) {
    const ref = cur.$ref as string;
    expect(ref.startsWith('#/')).toBe(true);
    let target: Y = doc;
    for (const part of ref.slice(2).split('/')) target = (target as YMap)[part.replace(/~1/g, '/').replace(/~0/g, '~')] as Y;
    expect(target, `unresolvable $ref ${ref}`).toBeTypeOf('object');
    cur = target as YMap;
  }
  return cur;
}

function documentedOps(): Array<{ method: string; path: string; op: YMap }> {
  const out: Array<{ method: string; path: string; op: YMap }> = [];
  for (const [path, item] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(item)) if (METHODS.includes(method)) out.push({ method, path, op });
  }
  return out;
}

/** The API routes as registered in code, as "method path" with OpenAPI-style parameters. */
function codeRoutes(): string[] {
  const never = () => {
    throw new Error('not called');
  };
  const control: RoomControl = { post: never, broadcast: never, kick: never, mute: never, roomInfo: never, topRooms: never, disconnect: never };
  return apiRoutes({ control, log: { range: never }, apiKey: 'k', apiRate: 1 }).map((r) => {
    const method = r.method === 'del' ? 'delete' : r.method;
    const path = r.pattern.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}');
    return `${method} ${path}`;
  });
}

/** The keywords that carry constraints, normalised so zod's JSON Schema and the doc compare. */
function constraints(s: Y): unknown {
  const schema = deref(s);
  const out: Record<string, unknown> = {};
  for (const k of ['type', 'pattern', 'minLength', 'maxLength', 'minimum', 'maximum', 'enum', 'const', 'default']) {
    if (schema[k] !== undefined) out[k] = schema[k];
  }
  if (schema.anyOf) out.anyOf = (schema.anyOf as Y[]).map(constraints);
  if (schema.type === 'object' && schema.properties) {
    out.properties = Object.fromEntries(Object.entries(schema.properties as YMap).map(([k, v]) => [k, constraints(v)]));
    out.required = [...((schema.required as string[] | undefined) ?? [])].sort();
    out.additionalProperties = schema.additionalProperties ?? null;
  }
  return out;
}

function zodConstraints(schema: z.ZodType): unknown {
  const json = z.toJSONSchema(schema, { unrepresentable: 'any', io: 'input' }) as unknown as YMap;
  const norm = (s: YMap): YMap => {
    const out: YMap = {};
    for (const k of ['type', 'pattern', 'minLength', 'maxLength', 'minimum', 'maximum', 'enum', 'const', 'default']) {
      if (s[k] !== undefined) out[k] = s[k];
    }
    if (s.anyOf) out.anyOf = (s.anyOf as YMap[]).map(norm);
    if (s.type === 'object' && s.properties) {
      out.properties = Object.fromEntries(Object.entries(s.properties as Record<string, YMap>).map(([k, v]) => [k, norm(v)]));
      out.required = [...((s.required as string[] | undefined) ?? [])].sort();
      out.additionalProperties = s.additionalProperties ?? null;
    }
    return out;
  };
  return norm(json);
}

const ERROR_STATUSES = ['400', '401', '404', '413', '429', '503'];

describe('the YAML subset reader', () => {
  it('reads maps, sequences, scalars and block scalars', () => {
    const y = parseYamlSubset(
      [
        '# comment',
        'a: 1',
        "b: 'it''s: quoted'",
        'c:',
        '  - x',
        '  - k: v',
        '    n: 2.5',
        'd: >-',
        '  folded',
        '  text',
        '',
        '  para',
        'e: [one, two]',
        'f: {}',
        "'202':",
        '  g: true',
        '/p/{room}:',
        '  h: null',
      ].join('\n'),
    );
    expect(y).toEqual({
      a: 1,
      b: "it's: quoted",
      c: ['x', { k: 'v', n: 2.5 }],
      d: 'folded text\npara',
      e: ['one', 'two'],
      f: {},
      '202': { g: true },
      '/p/{room}': { h: null },
    });
  });

  it('refuses what it does not understand instead of misreading it', () => {
    expect(() => parseYamlSubset('a: b: c')).toThrow(/quote it/);
    expect(() => parseYamlSubset('a: &anchor x')).toThrow();
    expect(() => parseYamlSubset('a: [x,\n  y]')).toThrow();
    expect(() => parseYamlSubset('a: 1\na: 2')).toThrow(/duplicate/);
    expect(() => parseYamlSubset('a:\n    b: 1\n  c: 2')).toThrow(/indentation/);
  });
});

describe('docs/openapi.yaml', () => {
  it('is an OpenAPI 3.1 document with a bearer scheme applied to everything by default', () => {
    expect(String(doc.openapi)).toMatch(/^3\.1\.\d+$/);
    expect((doc.info as YMap).title).toBeTypeOf('string');
    expect(components.securitySchemes!.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
  });

  it('documents every route registered in src/api/routes.ts', () => {
    const code = codeRoutes();
    expect(code.length).toBeGreaterThanOrEqual(6);
    const documented = documentedOps().map((o) => `${o.method} ${o.path}`);
    for (const r of code) expect(documented, `${r} is registered but not documented`).toContain(r);
  });

  it('documents no /v1 operation that the code does not register', () => {
    const code = codeRoutes();
    const v1 = documentedOps().filter((o) => o.path.startsWith('/v1/') || o.path === '/v1');
    expect(v1.length).toBeGreaterThan(0);
    for (const o of v1) expect(code, `${o.method} ${o.path} is documented but not registered`).toContain(`${o.method} ${o.path}`);
  });

  it('documents /metrics, /healthz, /readyz and the dev-only /dev/token, all without the API key', () => {
    for (const p of ['/metrics', '/healthz', '/readyz', '/dev/token']) {
      expect(paths[p]?.get, `GET ${p}`).toBeDefined();
      expect(paths[p]!.get!.security, `GET ${p} must not need the API key`).toEqual([]);
    }
    const dev = paths['/dev/token']!.get!;
    expect(dev['x-dev-only']).toBe(true);
    expect(String(dev.description)).toMatch(/dev mode only/i);
    expect(paths['/readyz']!.get!.responses).toHaveProperty('503');
  });

  it('protects every /v1 operation with the bearer key and documents 401 for it', () => {
    for (const { method, path, op } of documentedOps()) {
      if (!path.startsWith('/v1/')) continue;
      expect(op.security, `${method} ${path} overrides security`).toBeUndefined();
      expect(op.responses, `${method} ${path}`).toHaveProperty('401');
    }
  });

  it('gives every /v1 operation its statuses', () => {
    const expected: Record<string, string[]> = {
      'post /v1/rooms/{room}/messages': ['202', '400', '401', '413', '429', '503'],
      'get /v1/rooms/{room}/messages': ['200', '400', '401', '503'],
      'post /v1/broadcast': ['202', '400', '401', '413', '429', '503'],
      'get /v1/rooms/{room}': ['200', '400', '401', '404', '503'],
      'get /v1/rooms': ['200', '400', '401'],
      'post /v1/rooms/{room}/kick': ['200', '400', '401', '413', '503'],
      'post /v1/rooms/{room}/mute': ['200', '400', '401', '413', '503'],
      'post /v1/users/{uid}/disconnect': ['200', '400', '401', '413', '503'],
    };
    expect(Object.keys(expected).sort()).toEqual(codeRoutes().sort());
    for (const [key, statuses] of Object.entries(expected)) {
      const [method, path] = key.split(' ') as [string, string];
      const responses = paths[path]![method]!.responses as YMap;
      expect(Object.keys(responses).sort(), key).toEqual([...statuses].sort());
    }
  });

  it('uses the {error:{code,message}} shape for every error response, with Retry-After on 429', () => {
    const error = deref({ $ref: '#/components/schemas/Error' });
    expect(error.required).toEqual(['error']);
    const inner = (error.properties as YMap).error as YMap;
    expect([...(inner.required as string[])].sort()).toEqual(['code', 'message']);
    expect(((inner.properties as YMap).code as YMap).type).toBe('string');
    expect(((inner.properties as YMap).message as YMap).type).toBe('string');
    for (const { method, path, op } of documentedOps()) {
      for (const [status, r] of Object.entries(op.responses as YMap)) {
        if (!ERROR_STATUSES.includes(status) || path === '/readyz') continue;
        const resp = deref(r);
        const schema = (((resp.content as YMap)['application/json'] as YMap).schema as YMap).$ref;
        expect(schema, `${method} ${path} ${status}`).toBe('#/components/schemas/Error');
        if (status === '429') expect(resp.headers, `${method} ${path} 429`).toHaveProperty('Retry-After');
      }
    }
  });

  it('documents the success bodies: {seq, shown:true} | {shown:false}, {rooms, failed}, {ok}, {ok, until}, room info', () => {
    const success = (path: string, method: string, status: string) =>
      deref(((deref((paths[path]![method]!.responses as YMap)[status]!).content as YMap)['application/json'] as YMap).schema as YMap);
    const post = success('/v1/rooms/{room}/messages', 'post', '202');
    const variants = (post.oneOf as YMap[]).map((v) => ({ required: [...(v.required as string[])].sort(), shown: ((v.properties as YMap).shown as YMap).const }));
    expect(variants).toEqual(expect.arrayContaining([{ required: ['seq', 'shown'], shown: true }, { required: ['shown'], shown: false }]));
    expect(success('/v1/broadcast', 'post', '202').required).toEqual(['rooms', 'failed']);
    expect(success('/v1/rooms/{room}/kick', 'post', '200').required).toEqual(['ok']);
    expect(success('/v1/users/{uid}/disconnect', 'post', '200').required).toEqual(['ok']);
    expect([...(success('/v1/rooms/{room}/mute', 'post', '200').required as string[])].sort()).toEqual(['ok', 'until']);
    expect([...(success('/v1/rooms/{room}', 'get', '200').required as string[])].sort()).toEqual(['epoch', 'members', 'ratePerSec', 'room', 'seq']);
    expect([...(success('/v1/rooms/{room}/messages', 'get', '200').required as string[])].sort()).toEqual(['epoch', 'msgs', 'room', 'seq', 'to']);
    const top = success('/v1/rooms', 'get', '200');
    expect(deref(((top.properties as YMap).rooms as YMap).items as YMap).required).toEqual(['room', 'members']);
  });

  describe('request schemas are those of src/api/schemas.ts', () => {
    const bodies: Array<[string, z.ZodType]> = [
      ['/v1/rooms/{room}/messages', messageBody],
      ['/v1/broadcast', broadcastBody],
      ['/v1/rooms/{room}/kick', kickBody],
      ['/v1/rooms/{room}/mute', muteBody],
      ['/v1/users/{uid}/disconnect', disconnectBody],
    ];
    it.each(bodies)('POST %s', (path, schema) => {
      const rb = deref(paths[path]!.post!.requestBody as YMap);
      // Every field of a disconnect is optional, so is its body.
      expect(rb.required).toBe(!path.startsWith('/v1/users/'));
      const docSchema = ((rb.content as YMap)['application/json'] as YMap).schema as YMap;
      expect(deref(docSchema).additionalProperties).toBe(false);
      expect(constraints(docSchema)).toEqual(zodConstraints(schema));
    });

    it('refuses the kind "like", which JSON Schema cannot express through a pattern', () => {
      expect(messageBody.safeParse({ kind: 'like', body: 'x' }).success).toBe(false);
      expect(deref({ $ref: '#/components/schemas/Kind' }).not).toEqual({ const: 'like' });
    });

    it('states the encoded size limits of body and x', () => {
      expect(deref({ $ref: '#/components/schemas/Body' })['x-max-encoded-bytes']).toBe(MAX_BODY_ENCODED);
      expect(deref({ $ref: '#/components/schemas/Extras' })['x-max-encoded-bytes']).toBe(MAX_X_ENCODED);
    });

    it('has the room id pattern on every {room} path parameter, and the top query limits', () => {
      expect(zodConstraints(roomId)).toEqual({ type: 'string', pattern: ROOM_RE.source });
      for (const { method, path, op } of documentedOps()) {
        if (!path.includes('{room}')) continue;
        const params = (op.parameters as Y[]).map((p) => deref(p));
        const room = params.find((p) => p.name === 'room');
        expect(room, `${method} ${path}`).toMatchObject({ in: 'path', required: true });
        expect(constraints(room!.schema as YMap), `${method} ${path}`).toEqual(zodConstraints(roomId));
      }
      const uid = deref((paths['/v1/users/{uid}/disconnect']!.post!.parameters as Y[])[0]!);
      expect(uid).toMatchObject({ name: 'uid', in: 'path', required: true });
      expect(constraints(uid.schema as YMap)).toEqual(zodConstraints(userId));
      const top = (paths['/v1/rooms']!.get!.parameters as Y[]).map((p) => deref(p)).find((p) => p.name === 'top')!;
      expect(top).toMatchObject({ in: 'query', required: false });
      expect(constraints(top.schema as YMap)).toEqual(zodConstraints(topQuery));
      const history = (paths['/v1/rooms/{room}/messages']!.get!.parameters as Y[]).map((p) => deref(p));
      for (const name of ['since', 'limit'] as const) {
        const p = history.find((x) => x.name === name)!;
        expect(p, name).toMatchObject({ in: 'query', required: false });
        expect(constraints(p.schema as YMap), name).toEqual(zodConstraints(historyQuery.shape[name]));
      }
    });
  });
});

describe('business events (webhooks)', () => {
  const batch = deref({ $ref: '#/components/schemas/EventBatch' });
  const variants = (((batch.properties as YMap).events as YMap).items as YMap).oneOf as Y[];

  it('documents the signed webhook roomcast sends to --events-url', () => {
    const hook = ((doc.webhooks as YMap).businessEvents as YMap).post as YMap;
    const header = (hook.parameters as Y[]).map((p) => deref(p)).find((p) => p.in === 'header')!;
    expect(header.name).toBe(SIGNATURE_HEADER);
    expect(deref(((hook.requestBody as YMap).content as YMap)['application/json'] as YMap)).toMatchObject({ schema: { $ref: '#/components/schemas/EventBatch' } });
    expect([...(batch.required as string[])].sort()).toEqual(['events', 'id', 'node', 'sentAt']);
  });

  it('has one schema per event type the code emits, with its fields', () => {
    const documented = Object.fromEntries(
      variants.map((v) => {
        const s = deref(v);
        return [((s.properties as YMap).type as YMap).const as string, [...(s.required as string[])].sort()];
      }),
    );
    // One example of each RoomEvent variant: TypeScript checks they are complete and exact.
    const examples: RoomEvent[] = [
      { type: 'message.appended', room: 'r', epoch: 'e', seq: 1, ts: 1, msgs: [], likes: 0 },
      { type: 'members.changed', room: 'r', ts: 1, joined: 1, left: 0, members: 1, sample: { joined: ['u'], left: [] } },
      { type: 'room.started', room: 'r', ts: 1, cause: 'member' },
      { type: 'room.ended', room: 'r', ts: 1, reason: 'empty', startedAt: 1, peak: 1 },
    ];
    expect(Object.keys(documented).sort()).toEqual(examples.map((e) => e.type).sort());
    for (const e of examples) expect(documented[e.type], e.type).toEqual(Object.keys(e).sort());
  });
});

describe('the documented non-/v1 routes exist on a node', () => {
  let dev: RoomcastNode;
  let prod: RoomcastNode;
  beforeAll(async () => {
    [dev, prod] = await Promise.all([startTestNode(), startTestNode({ secret: SECRET, apiKey: API_KEY })]);
  });
  afterAll(async () => {
    await Promise.all([dev?.stop(), prod?.stop()]);
  });

  it('answers every documented GET outside /v1 (and /dev/token only in dev mode)', async () => {
    for (const { method, path, op } of documentedOps()) {
      if (path.startsWith('/v1/') || method !== 'get') continue;
      const url = `http://127.0.0.1:${dev.port}${path}${path === '/dev/token' ? '?uid=alice' : ''}`;
      const res = await fetch(url);
      expect(res.status, `GET ${path}`).toBe(200);
      await res.arrayBuffer();
      const onProd = await fetch(`http://127.0.0.1:${prod.port}${path}${path === '/dev/token' ? '?uid=alice' : ''}`);
      expect(onProd.status, `GET ${path} with a secret`).toBe(op['x-dev-only'] === true ? 404 : 200);
      await onProd.arrayBuffer();
    }
  });
});
