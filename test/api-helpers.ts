// Helpers for the server-API tests: real HTTP against a node started by startTestNode.
import { expect } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import type { Client, Frame } from './helpers.js';
import { API_KEY, metricValue } from './helpers.js';

export interface ApiResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON body (undefined when the body is not JSON). */
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
}

export interface ApiCallOptions {
  /** The bearer key (default API_KEY); null sends no Authorization header. */
  key?: string | null;
  /** A literal Authorization header (overrides key). */
  authorization?: string;
  /** Send this string as the request body verbatim instead of JSON-encoding `body`. */
  raw?: string;
}

export async function api(node: RoomcastNode, method: 'GET' | 'POST', path: string, body?: unknown, o: ApiCallOptions = {}): Promise<ApiResponse> {
  const headers: Record<string, string> = {};
  const key = o.key === undefined ? API_KEY : o.key;
  if (o.authorization !== undefined) headers.authorization = o.authorization;
  else if (key !== null) headers.authorization = `Bearer ${key}`;
  let payload: string | undefined;
  if (o.raw !== undefined) payload = o.raw;
  else if (body !== undefined) payload = JSON.stringify(body);
  if (payload !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`http://127.0.0.1:${node.port}${path}`, { method, headers, body: payload });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

/** The response is `status` with `{error:{code, message}}` (message a non-empty string). */
export function expectError(res: ApiResponse, status: number, code: string, what = ''): void {
  expect({ status: res.status, body: res.body }, `${what} -> ${res.text}`).toEqual({
    status,
    body: { error: { code, message: expect.any(String) } },
  });
  expect(res.body.error.message.length, what).toBeGreaterThan(0);
}

/** Posts a message to a room and expects it logged: returns its seq. */
export async function postShown(node: RoomcastNode, room: string, m: Record<string, unknown>): Promise<number> {
  const res = await api(node, 'POST', `/v1/rooms/${encodeURIComponent(room)}/messages`, m);
  expect({ status: res.status, body: res.body }, res.text).toEqual({ status: 202, body: { seq: expect.any(Number), shown: true } });
  return res.body.seq as number;
}

export type Msg = Record<string, unknown> & { u: string; k: string; b: unknown; t: number };

/** Waits for a batch (of `room`) holding a message matching `pred`; returns both. */
export async function waitMsg(c: Client, room: string, pred: (m: Msg) => boolean, timeoutMs = 3000): Promise<{ batch: Frame; msg: Msg }> {
  const batch = await c.waitFor((f) => f.op === 'batch' && f.room === room && (f.msgs as Msg[]).some(pred), timeoutMs);
  return { batch, msg: (batch.msgs as Msg[]).find(pred)! };
}

/** All messages delivered to `c` in `room` so far. */
export function delivered(c: Client, room: string): Msg[] {
  return c.batches(room).flatMap((b) => b.msgs as Msg[]);
}

let refs = 1000;
export const nextRef = () => ++refs;

/** Sends a chat and resolves with the reply frame (ack or error). */
export async function chat(c: Client, room: string, body: string, timeoutMs?: number): Promise<Frame> {
  const ref = nextRef();
  c.send({ op: 'send', room, kind: 'chat', body, ref });
  return c.reply(ref, timeoutMs);
}

/** Sends an op with a fresh ref and resolves with its reply. */
export async function request(c: Client, op: Record<string, unknown>, timeoutMs?: number): Promise<Frame> {
  const ref = nextRef();
  c.send({ ...op, ref });
  return c.reply(ref, timeoutMs);
}

/** The value of one sample of a metric in GET /metrics, 0 when absent. */
export async function metric(node: RoomcastNode, name: string, labels: Record<string, string> = {}): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${node.port}/metrics`);
  expect(res.status).toBe(200);
  return metricValue(await res.text(), name, labels);
}

/** Polls `fn` until it returns true (or throws after `timeoutMs`). */
export async function eventually(fn: () => boolean | Promise<boolean>, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
