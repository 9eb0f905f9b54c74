// Reads only the fields a member needs out of one MessagePack server frame, without
// allocating objects or decoding strings: op, from/to (batch), seq (joined), the number of
// msgs, each msg's `t` and kind (when asked), likes, and ack/error fields. Load-generator
// hot path: one call per frame per member.
export const OP_OTHER = 0;
export const OP_BATCH = 1;
export const OP_JOINED = 2;
export const OP_WELCOME = 3;
export const OP_ACK = 4;
export const OP_ERROR = 5;
export const OP_PONG = 6;
export const OP_MEMBERS = 7;
export const OP_BYE = 8;

export const K_OTHER = 0;
export const K_CHAT = 1;
export const K_SYSTEM = 2;
export const K_GIFT = 3;

/** The fields of the last scanned frame (reused; read them before the next scan). */
export const R = { op: 0, from: -1, to: -1, seq: -1, n: 0, firstT: NaN, likes: 0, shown: -1, ref: -1, code: '', ts: 0 };

let P = 0;
let B;

function num() {
  const c = B[P++];
  if (c < 0x80) return c;
  if (c >= 0xe0) return c - 256;
  let v;
  switch (c) {
    case 0xcc: return B[P++];
    case 0xcd: v = (B[P] << 8) | B[P + 1]; P += 2; return v;
    case 0xce: v = B.readUInt32BE(P); P += 4; return v;
    case 0xcf: v = Number(B.readBigUInt64BE(P)); P += 8; return v;
    case 0xd0: v = B.readInt8(P); P += 1; return v;
    case 0xd1: v = B.readInt16BE(P); P += 2; return v;
    case 0xd2: v = B.readInt32BE(P); P += 4; return v;
    case 0xd3: v = Number(B.readBigInt64BE(P)); P += 8; return v;
    case 0xca: v = B.readFloatBE(P); P += 4; return v;
    case 0xcb: v = B.readDoubleBE(P); P += 8; return v;
    case 0xc0: return NaN;
    case 0xc2: return 0;
    case 0xc3: return 1;
    default: P--; skip(); return NaN;
  }
}

/** String header at P: returns the byte length and leaves P at the content; -1 if not a str. */
function str() {
  const c = B[P];
  if (c >= 0xa0 && c <= 0xbf) { P += 1; return c & 0x1f; }
  if (c === 0xd9) { P += 2; return B[P - 1]; }
  if (c === 0xda) { P += 3; return (B[P - 2] << 8) | B[P - 1]; }
  if (c === 0xdb) { P += 5; return B.readUInt32BE(P - 4); }
  return -1;
}

/** Map or array header at P: returns the count and leaves P after the header; -1 if neither. */
function container(map) {
  const c = B[P];
  if (map) {
    if (c >= 0x80 && c <= 0x8f) { P++; return c & 0x0f; }
    if (c === 0xde) { P += 3; return (B[P - 2] << 8) | B[P - 1]; }
    if (c === 0xdf) { P += 5; return B.readUInt32BE(P - 4); }
  } else {
    if (c >= 0x90 && c <= 0x9f) { P++; return c & 0x0f; }
    if (c === 0xdc) { P += 3; return (B[P - 2] << 8) | B[P - 1]; }
    if (c === 0xdd) { P += 5; return B.readUInt32BE(P - 4); }
  }
  return -1;
}

function skip() {
  const c = B[P++];
  if (c < 0x80 || c >= 0xe0) return;
  if (c <= 0x8f) { for (let i = (c & 0x0f) * 2; i > 0; i--) skip(); return; }
  if (c <= 0x9f) { for (let i = c & 0x0f; i > 0; i--) skip(); return; }
  if (c <= 0xbf) { P += c & 0x1f; return; }
  let n;
  switch (c) {
    case 0xc0: case 0xc2: case 0xc3: return;
    case 0xc4: case 0xd9: P += 1 + B[P]; return;
    case 0xc5: case 0xda: P += 2 + ((B[P] << 8) | B[P + 1]); return;
    case 0xc6: case 0xdb: P += 4 + B.readUInt32BE(P); return;
    case 0xc7: P += 2 + B[P]; return;
    case 0xc8: P += 3 + ((B[P] << 8) | B[P + 1]); return;
    case 0xc9: P += 5 + B.readUInt32BE(P); return;
    case 0xca: P += 4; return;
    case 0xcb: P += 8; return;
    case 0xcc: case 0xd0: P += 1; return;
    case 0xcd: case 0xd1: P += 2; return;
    case 0xce: case 0xd2: P += 4; return;
    case 0xcf: case 0xd3: P += 8; return;
    case 0xd4: P += 2; return;
    case 0xd5: P += 3; return;
    case 0xd6: P += 5; return;
    case 0xd7: P += 9; return;
    case 0xd8: P += 17; return;
    case 0xdc: n = (B[P] << 8) | B[P + 1]; P += 2; for (; n > 0; n--) skip(); return;
    case 0xdd: n = B.readUInt32BE(P); P += 4; for (; n > 0; n--) skip(); return;
    case 0xde: n = ((B[P] << 8) | B[P + 1]) * 2; P += 2; for (; n > 0; n--) skip(); return;
    case 0xdf: n = B.readUInt32BE(P) * 2; P += 4; for (; n > 0; n--) skip(); return;
    default: throw new Error(`msgpack: bad type byte 0x${c.toString(16)}`);
  }
}

function opCode(len) {
  const a = B[P];
  let op = OP_OTHER;
  if (len === 5 && a === 0x62) op = OP_BATCH; // batch
  else if (len === 6 && a === 0x6a) op = OP_JOINED; // joined
  else if (len === 7 && a === 0x77) op = OP_WELCOME; // welcome
  else if (len === 3 && a === 0x61) op = OP_ACK; // ack
  else if (len === 5 && a === 0x65) op = OP_ERROR; // error
  else if (len === 4 && a === 0x70) op = OP_PONG; // pong
  else if (len === 7 && a === 0x6d) op = OP_MEMBERS; // members
  else if (len === 3 && a === 0x62) op = OP_BYE; // bye
  P += len;
  return op;
}

function kindCode(len) {
  const a = B[P];
  let k = K_OTHER;
  if (len === 4 && a === 0x63) k = K_CHAT; // chat
  else if (len === 6 && a === 0x73) k = K_SYSTEM; // system
  else if (len === 4 && a === 0x67) k = K_GIFT; // gift
  P += len;
  return k;
}

/**
 * Scans one msgs element (a map): returns t and sets MSG_KIND. Keys are one char: u n k b t x.
 */
let MSG_KIND = 0;
function msg() {
  let t = NaN;
  MSG_KIND = K_OTHER;
  const n = container(true);
  if (n < 0) { skip(); return t; }
  for (let i = 0; i < n; i++) {
    const kl = str();
    if (kl < 0) { skip(); skip(); continue; }
    const key = kl === 1 ? B[P] : 0;
    P += kl;
    if (key === 0x74) t = num(); // t
    else if (key === 0x6b) { const l = str(); if (l < 0) skip(); else MSG_KIND = kindCode(l); } // k
    else skip();
  }
  return t;
}

/**
 * Scans the frame in buf[start, end). mode: 0 = header fields only (stops at msgs when the
 * rest is not needed), 1 = also the first msg's t, 2 = every msg (onMsg(t, kind) per msg).
 * needLikes forces reading past msgs for `likes`. Returns R.op.
 */
export function scan(buf, start, mode, onMsg, needLikes) {
  B = buf;
  P = start;
  R.op = OP_OTHER; R.from = -1; R.to = -1; R.seq = -1; R.n = 0; R.firstT = NaN; R.likes = 0; R.shown = -1; R.ref = -1; R.code = ''; R.ts = 0;
  const n = container(true);
  if (n < 0) return OP_OTHER;
  for (let i = 0; i < n; i++) {
    const kl = str();
    if (kl < 0) { skip(); skip(); continue; }
    const k0 = B[P];
    const k1 = kl > 1 ? B[P + 1] : 0;
    P += kl;
    if (kl === 2 && k0 === 0x6f && k1 === 0x70) { // op
      const l = str();
      if (l < 0) { skip(); continue; }
      R.op = opCode(l);
    } else if (kl === 4 && k0 === 0x66) R.from = num(); // from
    else if (kl === 2 && k0 === 0x74 && k1 === 0x6f) R.to = num(); // to
    else if (kl === 3 && k0 === 0x73 && k1 === 0x65) R.seq = num(); // seq
    else if (kl === 5 && k0 === 0x6c) R.likes = num(); // likes
    else if (kl === 5 && k0 === 0x73 && k1 === 0x68) R.shown = B[P++] === 0xc3 ? 1 : 0; // shown
    else if (kl === 3 && k0 === 0x72 && k1 === 0x65) R.ref = num(); // ref
    else if (kl === 2 && k0 === 0x74 && k1 === 0x73) R.ts = num(); // ts
    else if (kl === 4 && k0 === 0x63 && k1 === 0x6f) { // code
      const l = str();
      if (l < 0) skip();
      else { R.code = B.toString('latin1', P, P + l); P += l; }
    } else if (kl === 4 && k0 === 0x6d && k1 === 0x73) { // msgs
      const m = container(false);
      if (m < 0) { skip(); continue; }
      R.n = m;
      if (mode === 0 && !needLikes) return R.op;
      for (let j = 0; j < m; j++) {
        if (mode === 2) {
          const t = msg();
          if (j === 0) R.firstT = t;
          onMsg(t, MSG_KIND);
        } else if (j === 0 && mode === 1) R.firstT = msg();
        else if (!needLikes) return R.op;
        else skip();
      }
    } else skip();
  }
  return R.op;
}
