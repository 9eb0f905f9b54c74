// The WebSocket abstraction. The SDK needs only this much of a socket, which both the
// browser's WebSocket and Node's `ws` package provide; tests inject a fake.
import { WS_PROTOCOL, WS_TOKEN_PROTOCOL_PREFIX } from '../protocol/ops.js';

export interface SocketMessageEvent {
  data: unknown;
}

export interface SocketCloseEvent {
  code: number;
  reason: string;
}

/** The subset of the WHATWG WebSocket interface the SDK uses. */
export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: SocketMessageEvent) => void) | null;
  onclose: ((ev: SocketCloseEvent) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/**
 * Opens a socket to `url` (already carrying the query string), offering `protocols` as
 * `Sec-WebSocket-Protocol` when given (they carry the token; a custom factory gets the token
 * in the query string instead and is never passed protocols).
 */
export type SocketFactory = (url: string, protocols?: string[]) => SocketLike | Promise<SocketLike>;

/** A WebSocket constructor (the browser's, `ws`'s, or any compatible one). */
export type WebSocketConstructor = new (url: string, protocols?: string[]) => unknown;

/** The subprotocols that carry `token` in the upgrade's headers rather than its URL. */
export function tokenProtocols(token: string): string[] {
  return [WS_PROTOCOL, WS_TOKEN_PROTOCOL_PREFIX + token];
}

export const OPEN = 1;

/** A factory for a given WebSocket constructor. */
export function socketFactoryFor(Ctor: WebSocketConstructor): SocketFactory {
  return (url, protocols) => new Ctor(url, protocols) as SocketLike;
}

let wsCtor: Promise<WebSocketConstructor> | undefined;

/**
 * The default factory: `globalThis.WebSocket` when there is one (browsers, Node >= 22, Deno,
 * Bun), otherwise the `ws` package, imported on first use.
 */
export const defaultSocketFactory: SocketFactory = async (url, protocols) => {
  const G = globalThis as { WebSocket?: WebSocketConstructor };
  if (typeof G.WebSocket === 'function') return new G.WebSocket(url, protocols) as SocketLike;
  wsCtor ??= importWs();
  const Ctor = await wsCtor;
  return new Ctor(url, protocols) as SocketLike;
};

async function importWs(): Promise<WebSocketConstructor> {
  // A non-literal specifier keeps bundlers (esbuild for the browser bundle) from resolving it.
  const specifier = 'ws';
  try {
    const mod = (await import(specifier)) as { default?: WebSocketConstructor; WebSocket?: WebSocketConstructor };
    const Ctor = mod.WebSocket ?? mod.default;
    if (typeof Ctor !== 'function') throw new Error('the ws module has no WebSocket export');
    return Ctor;
  } catch (err) {
    wsCtor = undefined;
    throw new Error(`no global WebSocket and the "ws" package could not be loaded (npm install ws): ${String(err)}`);
  }
}

/** Incoming message data as bytes; undefined for text frames (the contract has none). */
export function toBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof Uint8Array) return data; // includes Node Buffers
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) {
    // ws delivers fragmented messages as Buffer[] when binaryType is 'fragments'
    const parts = data.filter((p): p is Uint8Array => p instanceof Uint8Array);
    const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.byteLength;
    }
    return out;
  }
  return undefined;
}

/** The HTTP status of a refused upgrade, when the error says so (Node's `ws` does; browsers never tell). */
export function upgradeStatusOf(ev: unknown): number | undefined {
  const e = ev as { message?: unknown; error?: { message?: unknown } } | null;
  const text = typeof e?.message === 'string' ? e.message : typeof e?.error?.message === 'string' ? e.error.message : '';
  const m = /Unexpected server response: (\d{3})/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** A short description of a socket error event. */
export function describeSocketError(ev: unknown): string {
  const e = ev as { message?: unknown; error?: { message?: unknown } } | null;
  if (typeof e?.message === 'string' && e.message) return e.message;
  if (typeof e?.error?.message === 'string' && e.error.message) return e.error.message;
  return 'WebSocket error';
}
