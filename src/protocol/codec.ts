// MessagePack framing. Ingress decodes strings raw so chat bodies can be checked for valid
// UTF-8 (the default decoder silently replaces bad bytes); egress encodes once per frame.
import { Decoder, Encoder } from '@msgpack/msgpack';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { ServerOp } from './ops.js';

const encoder = new Encoder({ ignoreUndefined: true });

export function encodeFrame(op: ServerOp): Uint8Array {
  return encoder.encode(op);
}

/** Wraps an encoded frame in a `z` frame: deflate-raw of the MessagePack bytes. */
export function compressFrame(encoded: Uint8Array): Uint8Array {
  return encoder.encode({ op: 'z', data: deflateRawSync(encoded) });
}

export function inflateZ(data: Uint8Array): Uint8Array {
  return inflateRawSync(data);
}

/** Decodes one client frame; strings stay as bytes (see validate.ts). Throws on anything but one value. */
export function createIngressDecoder(maxBytes: number): (bytes: Uint8Array) => unknown {
  const decoder = new Decoder({
    rawStrings: true,
    maxStrLength: maxBytes,
    maxBinLength: maxBytes,
    maxArrayLength: maxBytes,
    maxMapLength: 64,
    maxExtLength: maxBytes,
  });
  return (bytes) => decoder.decode(bytes);
}
