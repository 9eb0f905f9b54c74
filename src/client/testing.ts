// Test doubles for the SDK's injectable clock and transport: the SDK's own unit tests use
// them, and so can an app's tests (`connect({ url, transport: fake.factory, clock })`).
import { decode, encode } from '@msgpack/msgpack';
import type { Clock, TimerHandle } from './clock.js';
import type { SocketCloseEvent, SocketLike, SocketMessageEvent } from './transport.js';

interface FakeTimer {
  id: number;
  at: number;
  fn: () => void;
}

/** Lets pending promise callbacks (microtasks and one macrotask turn) run. */
export function flush(): Promise<void> {
  return new Promise((resolve) => globalThis.setTimeout(resolve, 0));
}

/** A manual clock: time moves only through advance(). */
export class FakeClock implements Clock {
  private timers: FakeTimer[] = [];
  private nextId = 1;

  constructor(public time = 1_700_000_000_000) {}

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const t = { id: this.nextId++, at: this.time + Math.max(0, ms), fn };
    this.timers.push(t);
    return t.id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  /** Delays of the pending timers, from now, in firing order. */
  pending(): number[] {
    return this.timers.map((t) => t.at - this.time).sort((a, b) => a - b);
  }

  /** Moves time forward by `ms`, firing due timers in order and flushing promises after each. */
  async advance(ms: number): Promise<void> {
    const until = this.time + ms;
    await flush();
    for (;;) {
      const due = this.timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = Math.max(this.time, due.at);
      due.fn();
      await flush();
    }
    this.time = until;
    await flush();
  }
}

export type FakeFrame = Record<string, unknown> & { op: string };

/** A fake socket: the test plays the server. */
export class FakeSocket implements SocketLike {
  binaryType = 'blob';
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: SocketMessageEvent) => void) | null = null;
  onclose: ((ev: SocketCloseEvent) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  /** Frames the client sent, decoded. */
  readonly sent: FakeFrame[] = [];
  closedWith: { code?: number; reason?: string } | undefined;

  constructor(readonly url: string) {}

  get query(): URLSearchParams {
    return new URL(this.url).searchParams;
  }

  send(data: Uint8Array): void {
    if (this.readyState !== 1) throw new Error('not open');
    this.sent.push(decode(data) as FakeFrame);
  }

  close(code?: number, reason?: string): void {
    if (this.readyState >= 2) return;
    this.closedWith = { code, reason };
    this.readyState = 3;
    this.onclose?.({ code: code ?? 1005, reason: reason ?? '' });
  }

  // ---- the server side ----

  /** Accepts the upgrade and sends `welcome`. */
  accept(welcome: Partial<FakeFrame> = {}): void {
    this.readyState = 1;
    this.onopen?.({});
    this.push({ op: 'welcome', sid: 's1', uid: 'u1', node: 'n1', hb: 60, ...welcome });
  }

  /** Sends one frame (MessagePack-encoded, as an ArrayBuffer like a browser delivers it). */
  push(frame: Record<string, unknown>): void {
    this.pushRaw(encode(frame));
  }

  pushRaw(bytes: Uint8Array): void {
    const copy = bytes.slice();
    this.onmessage?.({ data: copy.buffer });
  }

  /** Refuses the upgrade (what `ws` reports for an HTTP status) or fails the connection. */
  fail(message = 'connect ECONNREFUSED'): void {
    this.onerror?.({ message });
    this.readyState = 3;
    this.onclose?.({ code: 1006, reason: '' });
  }

  /** The server closes the connection. */
  serverClose(code = 1006, reason = ''): void {
    if (this.readyState >= 2) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** Sent frames with this op. */
  ops(op: string): FakeFrame[] {
    return this.sent.filter((f) => f.op === op);
  }

  /** The last sent frame with this op. */
  last(op: string): FakeFrame {
    const f = this.ops(op).at(-1);
    if (!f) throw new Error(`no ${op} sent; sent: ${JSON.stringify(this.sent)}`);
    return f;
  }
}

/** A socket factory recording every socket the client opens. */
export class FakeTransport {
  readonly sockets: FakeSocket[] = [];
  readonly factory = (url: string): SocketLike => {
    const s = new FakeSocket(url);
    this.sockets.push(s);
    return s;
  };

  get last(): FakeSocket {
    const s = this.sockets.at(-1);
    if (!s) throw new Error('no socket opened yet');
    return s;
  }
}

type EventSource = { on(event: string, fn: (payload: unknown) => void): () => void };

/** Records every event a client emits, in order. */
export function recordEvents(client: object): {
  events: Array<[string, unknown]>;
  of: <T = Record<string, unknown>>(name: string) => T[];
} {
  const events: Array<[string, unknown]> = [];
  const src = client as EventSource;
  for (const e of ['state', 'open', 'batch', 'joined', 'reset', 'gap', 'members', 'kicked', 'muted', 'bye', 'error']) {
    src.on(e, (p) => events.push([e, p]));
  }
  return { events, of: <T,>(name: string) => events.filter(([n]) => n === name).map(([, p]) => p as T) };
}
