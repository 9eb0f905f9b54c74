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

export interface IngressDecoder {
  /** Decodes one client frame; throws on anything but exactly one MessagePack value. */
  decode(bytes: Uint8Array): unknown;
  /**
   * The same frame with strings left as bytes. The default string decoding is lenient
   * (invalid UTF-8 becomes other characters), so fields whose content matters (chat bodies)
   * are checked against their raw bytes. Used only for those ops, not per frame.
   */
  decodeRaw(bytes: Uint8Array): unknown;
}

export function createIngressDecoder(maxBytes: number): IngressDecoder {
  const limits = { maxStrLength: maxBytes, maxBinLength: maxBytes, maxArrayLength: maxBytes, maxMapLength: 64, maxExtLength: maxBytes };
  const typed = new Decoder(limits);
  const raw = new Decoder({ ...limits, rawStrings: true });
  return { decode: (b) => typed.decode(b), decodeRaw: (b) => raw.decode(b) };
}
