// MessagePack framing. Ingress decodes each frame once with strings left as views of its
// bytes (the default decoder silently replaces bad UTF-8); validation turns the fields it
// needs into strings, checking UTF-8 as it goes. Egress encodes once per frame.
import { Decoder, Encoder } from '@msgpack/msgpack';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { ServerOp } from './ops.js';

const encoder = new Encoder({ ignoreUndefined: true });

export function encodeFrame(op: ServerOp): Uint8Array {
  return encoder.encode(op);
}

/** Wraps an encoded frame in a `z` frame: deflate-raw of the MessagePack bytes. */
function compressFrame(encoded: Uint8Array): Uint8Array {
  return encoder.encode({ op: 'z', data: deflateRawSync(encoded) });
}

/** The frame as a member that asked for compressed frames gets it: a `z` frame when over `threshold` bytes. */
export function compressOver(encoded: Uint8Array, threshold: number): Uint8Array {
  return encoded.byteLength > threshold ? compressFrame(encoded) : encoded;
}

/** An encoded frame, and its `z` form once a member that asked for compressed frames needed it. */
export interface EncodedFrame {
  plain: Uint8Array;
  z?: Uint8Array;
}

/** The bytes of `f` for a member: its `z` form (made once, compressOver) when `compress`. */
export function frameBytes(f: EncodedFrame, compress: boolean, threshold: number): Uint8Array {
  return compress ? (f.z ??= compressOver(f.plain, threshold)) : f.plain;
}

export function inflateZ(data: Uint8Array): Uint8Array {
  return inflateRawSync(data);
}

export interface IngressDecoder {
  /**
   * Decodes one client frame; throws on anything but exactly one MessagePack value. Map keys
   * are strings; str and bin values are both Uint8Array views of `bytes` (validate.ts tells
   * them apart and decodes the strings it needs).
   */
  decode(bytes: Uint8Array): unknown;
}

export function createIngressDecoder(maxBytes: number): IngressDecoder {
  const raw = new Decoder({ maxStrLength: maxBytes, maxBinLength: maxBytes, maxArrayLength: maxBytes, maxMapLength: 64, maxExtLength: maxBytes, rawStrings: true });
  return { decode: (b) => raw.decode(b) };
}
