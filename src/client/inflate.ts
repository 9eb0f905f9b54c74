// `z` frames (PROTOCOL §4, §8): `data` is raw DEFLATE (RFC 1951) of a MessagePack frame.
// Node: node:zlib's inflateRawSync (imported dynamically so the browser bundle never sees
// it). Browsers: DecompressionStream('deflate-raw').

export type Inflate = (data: Uint8Array) => Uint8Array | Promise<Uint8Array>;

/**
 * The largest frame a `z` frame may inflate to: far above any batch roomcast sends, far below
 * what a decompression bomb (~1000:1) from a hostile server or middlebox would make. Past it
 * inflating stops with an error, which the client reports as a PROTOCOL error.
 */
export const MAX_INFLATED_BYTES = 16 * 1024 * 1024;

type InflateRawSync = (data: Uint8Array) => Uint8Array;

interface StreamWriter {
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
}
interface StreamReader {
  read(): Promise<{ done: boolean; value?: Uint8Array }>;
  cancel(): Promise<void>;
}
interface DecompressionStreamLike {
  readonly writable: { getWriter(): StreamWriter };
  readonly readable: { getReader(): StreamReader };
}
type DecompressionStreamCtor = new (format: string) => DecompressionStreamLike;

export function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === 'string';
}

let zlibInflate: InflateRawSync | undefined;
let zlibLoading: Promise<InflateRawSync | undefined> | undefined;

/** Loads node:zlib (Node only); resolves undefined elsewhere. Safe to call repeatedly. */
export function loadZlib(): Promise<InflateRawSync | undefined> {
  if (!isNode()) return Promise.resolve(undefined);
  zlibLoading ??= (async () => {
    const specifier = 'node:zlib';
    try {
      const zlib = (await import(specifier)) as { inflateRawSync: (data: Uint8Array, o: { maxOutputLength: number }) => Uint8Array };
      zlibInflate = (data) => zlib.inflateRawSync(data, { maxOutputLength: MAX_INFLATED_BYTES });
      return zlibInflate;
    } catch {
      return undefined;
    }
  })();
  return zlibLoading;
}

/** Decompresses with DecompressionStream('deflate-raw') (browsers; Node >= 21.2), up to `maxBytes`. */
export async function inflateWithStream(data: Uint8Array, maxBytes = MAX_INFLATED_BYTES): Promise<Uint8Array> {
  const DS = (globalThis as { DecompressionStream?: DecompressionStreamCtor }).DecompressionStream;
  if (typeof DS !== 'function') throw new Error('DecompressionStream is not available');
  const ds = new DS('deflate-raw');
  const writer = ds.writable.getWriter();
  // Not awaited: write resolves only as the output is read.
  writer.write(data).catch(() => undefined);
  writer.close().catch(() => undefined);
  const reader = ds.readable.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (value) {
      chunks.push(value);
      total += value.byteLength;
      if (total > maxBytes) {
        reader.cancel().catch(() => undefined);
        throw new Error(`a z frame inflates to more than ${maxBytes} bytes`);
      }
    }
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}

/**
 * The default inflater: synchronous node:zlib once loaded (call loadZlib() first), else
 * DecompressionStream.
 */
export const defaultInflate: Inflate = (data) => {
  if (zlibInflate) return zlibInflate(data);
  if (isNode()) return loadZlib().then((f) => (f ? f(data) : inflateWithStream(data)));
  return inflateWithStream(data);
};
