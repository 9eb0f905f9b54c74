// One WebSocket connection of the client: what it knows about its socket (welcomed, last
// frame, refused upgrade status), frames in strictly in order (waiting for an async inflate
// of `z` frames when needed) and frames out, MessagePack-encoded.
import type { Decoder, Encoder } from '@msgpack/msgpack';
import type { Clock } from './clock.js';
import { RoomcastError } from './errors.js';
import type { Inflate } from './inflate.js';
import { describeSocketError, OPEN, toBytes, upgradeStatusOf, type SocketLike } from './transport.js';
import type { Frame } from './types.js';

export interface LinkHandler {
  frame(link: Link, f: Frame): void;
  closed(link: Link, code: number, reason: string): void;
  error(e: RoomcastError): void;
}

export interface LinkOptions {
  gen: number;
  socket: SocketLike;
  /** The URL as shown in errors (token redacted). */
  url: string;
  clock: Clock;
  inflate: Inflate;
  encoder: Encoder;
  decoder: Decoder;
  handler: LinkHandler;
}

type RxItem = { data: Uint8Array } | { close: { code: number; reason: string } };

export class Link {
  readonly gen: number;
  readonly socket: SocketLike;
  readonly url: string;
  welcomed = false;
  openedAt: number;
  lastRx: number;
  /** frames received so far */
  rxCount = 0;
  /** the room joined through the URL query, until it is answered */
  urlRoom?: string;
  /** HTTP status of a refused upgrade (Node `ws` reports it) */
  status?: number;
  errorText?: string;
  /** called once the socket reports its close (client.close() waits for it) */
  onClosed?: () => void;
  private readonly rx: RxItem[] = [];
  private busy = false;
  private dead = false;

  constructor(private readonly o: LinkOptions) {
    this.gen = o.gen;
    this.socket = o.socket;
    this.url = o.url;
    this.openedAt = this.lastRx = o.clock.now();
    const s = o.socket;
    s.binaryType = 'arraybuffer';
    s.onmessage = (ev) => {
      const bytes = toBytes(ev.data);
      this.lastRx = o.clock.now();
      this.rxCount++;
      if (bytes) this.rx.push({ data: bytes });
      else o.handler.error(new RoomcastError('PROTOCOL', 'the server sent a text frame'));
      this.pump();
    };
    s.onclose = (ev) => {
      this.onClosed?.();
      this.rx.push({ close: { code: ev?.code ?? 1006, reason: ev?.reason ?? '' } });
      this.pump();
    };
    s.onerror = (ev) => {
      this.errorText = describeSocketError(ev);
      this.status ??= upgradeStatusOf(ev);
    };
  }

  write(frame: Record<string, unknown>): boolean {
    const s = this.socket;
    if (this.dead || s.readyState !== OPEN) return false;
    try {
      s.send(this.o.encoder.encode(frame));
      return true;
    } catch {
      return false;
    }
  }

  /** Stops delivering anything from this socket; closes it unless the caller does. */
  abandon(close = true): void {
    this.dead = true;
    this.rx.length = 0;
    if (close) safeClose(this.socket);
  }

  /** Processes received items strictly in order, waiting for an async inflate when needed. */
  private pump(): void {
    const h = this.o.handler;
    const fail = (what: string, err: unknown) => h.error(new RoomcastError('PROTOCOL', `${what}: ${String((err as Error)?.message ?? err)}`, { cause: err }));
    while (!this.busy && !this.dead && this.rx.length > 0) {
      const item = this.rx.shift()!;
      if ('close' in item) {
        h.closed(this, item.close.code, item.close.reason);
        continue;
      }
      let frame: Frame;
      try {
        frame = this.decode(item.data);
      } catch (err) {
        fail('undecodable frame', err);
        continue;
      }
      if (frame.op === 'z') {
        let inflated: Uint8Array | Promise<Uint8Array>;
        try {
          inflated = this.o.inflate(asBytes(frame.data));
        } catch (err) {
          fail('cannot inflate a z frame', err);
          continue;
        }
        if (isPromise(inflated)) {
          this.busy = true;
          inflated
            .then(
              (bytes) => {
                if (!this.dead) h.frame(this, this.decode(bytes));
              },
              (err: unknown) => fail('cannot inflate a z frame', err),
            )
            .catch((err: unknown) => fail('bad z frame', err))
            .finally(() => {
              this.busy = false;
              this.pump();
            });
          return;
        }
        try {
          frame = this.decode(inflated);
        } catch (err) {
          fail('bad z frame', err);
          continue;
        }
      }
      h.frame(this, frame);
    }
  }

  private decode(bytes: Uint8Array): Frame {
    const f = this.o.decoder.decode(bytes) as Frame;
    if (typeof f !== 'object' || f === null || Array.isArray(f) || typeof f.op !== 'string') throw new Error('not a map with an op');
    return f;
  }
}

export function safeClose(s: SocketLike): void {
  try {
    if (s.readyState <= OPEN) s.close(1000);
  } catch {
    /* already closed */
  }
}

function asBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  throw new Error('z frame without binary data');
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown })?.then === 'function';
}
