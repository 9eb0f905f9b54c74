// One load-generator process (forked by gen.mjs; commands over IPC). Holds many members at
// low memory: by default each member is a minimal RFC 6455 client on a bare net.Socket that
// reads into one shared buffer (no per-read allocation, no per-member stream objects beyond
// the socket), with its state in typed arrays indexed by member. `--client ws` uses the `ws`
// package instead (perMessageDeflate off) to cross-check the minimal client.
//
// Per member it verifies that every batch's `from` is the previous `to` + 1 (misses are the
// skipped seqs), counts frames, messages and bytes, and records end-to-end latency from each
// message's server time `t` to receipt. Protocols: roomcast (MessagePack ops), peer (the same
// batch frames from the uWS/ws peers) and sio (engine.io v4 / socket.io v5 text packets).
import net from 'node:net';
import { encode } from '@msgpack/msgpack';
import { Hist } from './hist.mjs';
import { mintToken } from './token.mjs';
import { scan, R, OP_BATCH, OP_JOINED, OP_ACK, OP_ERROR, OP_PONG, OP_MEMBERS, K_SYSTEM, K_GIFT, K_CHAT } from './msgpeek.mjs';

let C; // config from the parent
let N = 0;
// ---- per-member state (typed arrays: ~30 bytes per member) ----
let last; // Float64Array: last seq processed; -1 = no baseline yet
let missed; // Uint32Array: seqs skipped
let state; // Uint8Array: 0 idle, 1 connecting, 2 open (handshake done), 3 joined, 4 closed, 5 failed
let attempts; // Uint8Array
let startedAt; // Float64Array: connect start (ms)
let socks; // Array of sockets (lite) or WebSocket (ws)
let pend; // Array: partial frame bytes per member (mostly undefined)

const SHARED = Buffer.allocUnsafe(256 * 1024);
const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

// ---- window counters ----
const W = {
  frames: 0, msgs: 0, bytes: 0, gapEvents: 0, missed: 0, dups: 0,
  chat0: 0, likes0: 0, msgs0: 0, lastFrameAt: 0, firstFrameAt: 0,
  acks: { chatShown: 0, chatHidden: 0, likeShown: 0, likeHidden: 0 },
  // errors without a ref: only ref-less likes get those (chat and pings carry refs)
  unrefErrors: 0,
  errors: {}, sent: { chat: 0, like: 0, likeFrames: 0, ping: 0 }, closes: {}, other: 0, membersFrames: 0, pongs: 0,
};
const lat = new Hist(); // per message, sampled members
const frameLat = new Hist(); // per frame: its oldest message, every member
const hiLat = new Hist(); // system/gift messages
const rtt = new Hist(); // ping op round trip
let rssStart = 0;
let opened = 0, joined = 0, failed = 0, closed = 0, connecting = 0;
const failReasons = {};

function bump(obj, key, n = 1) {
  obj[key] = (obj[key] ?? 0) + n;
}

// ---- the member's view of one frame ----

let curSampled = false;
let curNow = 0;
let curMember = 0;
function onMsg(t, kind) {
  const ms = curNow - t;
  if (curSampled) lat.record(ms);
  if (kind === K_SYSTEM || kind === K_GIFT) hiLat.record(ms);
  if (curMember === 0 && kind === K_CHAT && C.firstIndex === 0) W.chat0++;
}

function onBatch(i, from, to, n, firstT, likes, bytes) {
  const l = last[i];
  if (l < 0) {
    last[i] = to;
  } else if (from === l + 1) {
    last[i] = to;
  } else if (from > l + 1) {
    const gap = from - l - 1;
    missed[i] += gap;
    W.missed += gap;
    W.gapEvents++;
    last[i] = to;
  } else {
    W.dups++;
    if (to > l) last[i] = to;
  }
  W.frames++;
  W.msgs += n;
  W.bytes += bytes;
  if (n > 0 && firstT === firstT) frameLat.record(curNow - firstT);
  if (i === 0 && C.firstIndex === 0) {
    // "member 0" is the fleet's first member (the budget and likes checks read it)
    W.likes0 += likes;
    W.msgs0 += n;
  }
  W.lastFrameAt = curNow;
  if (W.firstFrameAt === 0) W.firstFrameAt = curNow;
}

function onJoined(i, seq) {
  if (state[i] < 3) {
    state[i] = 3;
    joined++;
  }
  if (last[i] < 0 && seq >= 0) last[i] = seq;
}

const pingSent = new Map();
function onPayload(i, buf, s, e, opcode) {
  curNow = Date.now();
  if (C.proto === 'sio') return onSio(i, buf, s, e);
  const sampled = C.latencySample > 0 && i % C.latencySample === 0;
  curSampled = sampled;
  curMember = i;
  const mode = sampled || C.hiLatency || i === 0 ? 2 : 1;
  let op;
  try {
    op = scan(buf, s, mode, onMsg, C.needLikes || i === 0);
  } catch {
    bump(W.errors, 'BAD_FRAME_AT_CLIENT');
    return;
  }
  if (op === OP_BATCH) onBatch(i, R.from, R.to, R.n, R.firstT, R.likes, e - s);
  else if (op === OP_JOINED) onJoined(i, R.seq);
  else if (op === OP_ACK) {
    const like = R.ref % 2 === 1;
    if (R.shown === 1) W.acks[like ? 'likeShown' : 'chatShown']++;
    else W.acks[like ? 'likeHidden' : 'chatHidden']++;
  } else if (op === OP_ERROR) {
    bump(W.errors, R.code || 'unknown');
    if (R.ref === -1) W.unrefErrors++;
  }
  else if (op === OP_PONG) {
    W.pongs++;
    const at = pingSent.get(R.ref);
    if (at !== undefined) {
      rtt.record(curNow - at);
      pingSent.delete(R.ref);
    }
  } else if (op === OP_MEMBERS) W.membersFrames++;
  else W.other++;
}

function onSio(i, buf, s, e) {
  const c0 = buf[s];
  if (c0 === 0x32 && e - s === 1) return sendText(i, '3'); // engine.io ping -> pong
  if (c0 === 0x30) return sendText(i, '40'); // engine.io open -> socket.io connect
  if (c0 === 0x34 && buf[s + 1] === 0x32) {
    // 42["event",{...}]
    let ev;
    try {
      ev = JSON.parse(buf.toString('utf8', s + 2, e));
    } catch {
      bump(W.errors, 'BAD_FRAME_AT_CLIENT');
      return;
    }
    const [name, d] = ev;
    if (name === 'batch') {
      const sampled = C.latencySample > 0 && i % C.latencySample === 0;
      const msgs = d.msgs ?? [];
      for (const m of msgs) {
        const ms = curNow - m.t;
        if (sampled) lat.record(ms);
        if (m.k === 'system' || m.k === 'gift') hiLat.record(ms);
        if (i === 0 && C.firstIndex === 0 && m.k === 'chat') W.chat0++;
      }
      onBatch(i, d.from, d.to, msgs.length, msgs.length ? msgs[0].t : NaN, d.likes ?? 0, e - s);
    } else if (name === 'joined') onJoined(i, d.seq ?? -1);
    return;
  }
  if (c0 === 0x34 && buf[s + 1] === 0x30) {
    // 40{sid}: connected to the namespace; without a joined event the first batch is the baseline
    if (!C.sioJoinedEvent) onJoined(i, -1);
    return;
  }
  W.other++;
}

// ---- sending (client frames are masked; a zero mask key leaves the payload as is) ----

function frameHeader(opcode, len) {
  let h;
  if (len < 126) {
    h = Buffer.allocUnsafe(6);
    h[1] = 0x80 | len;
  } else if (len < 65536) {
    h = Buffer.allocUnsafe(8);
    h[1] = 0x80 | 126;
    h.writeUInt16BE(len, 2);
  } else {
    h = Buffer.allocUnsafe(14);
    h[1] = 0x80 | 127;
    h.writeUInt32BE(0, 2);
    h.writeUInt32BE(len, 6);
  }
  h[0] = 0x80 | opcode;
  h.writeUInt32BE(0, h.length - 4);
  return h;
}

function sendRaw(i, opcode, payload) {
  const s = socks[i];
  if (!s || state[i] < 2 || state[i] >= 4) return false;
  if (C.client === 'ws') {
    if (opcode === 1) s.send(payload.toString());
    else s.send(payload, { binary: true });
    return true;
  }
  s.write(Buffer.concat([frameHeader(opcode, payload.length), payload]));
  return true;
}
function sendText(i, text) {
  return sendRaw(i, 1, Buffer.from(text));
}
function sendOp(i, op) {
  return sendRaw(i, 2, Buffer.from(encode(op)));
}

// ---- the minimal client on net.Socket ----

function liteConnect(i) {
  const u = target(i);
  const s = net.connect({
    host: u.host,
    port: u.port,
    localAddress: addr(i),
    localPort: localPort(i),
    noDelay: true,
    onread: { buffer: SHARED, callback: onRead },
  });
  s.m = i;
  s.hs = '';
  s.on('connect', onConnect);
  s.on('error', onError);
  s.on('close', onClose);
  socks[i] = s;
}

function onConnect() {
  const i = this.m;
  this.write(
    `GET ${path(i)} HTTP/1.1\r\nHost: ${target(i).host}:${target(i).port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
}

function onError(err) {
  this.err = err.code ?? err.message;
}

const closeLog = [];
function onClose(hadError) {
  const i = this.m;
  if (closeLog.length < 10 && this.hs === null) closeLog.push({ i, sinceStartMs: Date.now() - startedAt[i], hadError, err: this.err, state: state[i], bytesRead: this.bytesRead, bytesWritten: this.bytesWritten });
  memberGone(i, this.err ?? (this.hs === null ? 'closed' : 'closed before upgrade'));
}

function onRead(n, buf) {
  const i = this.m;
  let s = 0;
  if (this.hs !== null) {
    // still in the HTTP upgrade: collect the response head
    const head = this.hs + buf.toString('latin1', 0, n);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (head.length > 8192) this.destroy();
      this.hs = head;
      return true;
    }
    const status = head.slice(9, 12);
    if (status !== '101') {
      this.err = `HTTP ${status}`;
      this.destroy();
      return false;
    }
    s = end + 4 - this.hs.length;
    this.hs = null;
    memberOpen(i);
    if (s >= n) return true;
  }
  frames(i, buf, s, n);
  return true;
}

/** Parses complete frames in buf[s, n); keeps a partial tail (copied: buf is shared). */
function frames(i, buf, s, n) {
  let p = pend[i];
  if (p !== undefined) {
    buf = Buffer.concat([p, buf.subarray(s, n)]);
    s = 0;
    n = buf.length;
    pend[i] = undefined;
  }
  while (n - s >= 2) {
    const b0 = buf[s];
    let len = buf[s + 1] & 0x7f;
    let h = 2;
    if (len === 126) {
      if (n - s < 4) break;
      len = (buf[s + 2] << 8) | buf[s + 3];
      h = 4;
    } else if (len === 127) {
      if (n - s < 10) break;
      len = buf.readUInt32BE(s + 6);
      h = 10;
    }
    if (n - s < h + len) break;
    const opcode = b0 & 0x0f;
    const ps = s + h;
    const pe = ps + len;
    if (opcode === 2 || opcode === 1) onPayload(i, buf, ps, pe, opcode);
    else if (opcode === 9) sendRaw(i, 0xa, Buffer.from(buf.subarray(ps, pe)));
    else if (opcode === 8) {
      this_close(i, len >= 2 ? buf.readUInt16BE(ps) : 1005);
      return;
    } else if (opcode === 0) bump(W.errors, 'FRAGMENTED');
    s = pe;
  }
  if (s < n) pend[i] = Buffer.from(buf.subarray(s, n));
}

function this_close(i, code) {
  const s = socks[i];
  if (!s) return;
  s.err = `close ${code}`;
  s.destroy();
}

// ---- the ws-package client ----

let WebSocketClass;
async function wsConnect(i) {
  const u = target(i);
  const ws = new WebSocketClass(`ws://${u.host}:${u.port}${path(i)}`, {
    perMessageDeflate: false,
    localAddress: addr(i),
    skipUTF8Validation: true,
    handshakeTimeout: C.connectTimeoutMs,
  });
  ws.m = i;
  ws.on('open', () => memberOpen(i));
  ws.on('message', (data, isBinary) => onPayload(i, data, 0, data.length, isBinary ? 2 : 1));
  ws.on('error', (err) => (ws.err = err.code ?? err.message));
  ws.on('unexpected-response', (_req, res) => {
    ws.err = `HTTP ${res.statusCode}`;
  });
  ws.on('close', (code) => memberGone(i, ws.err ?? `close ${code}`));
  socks[i] = ws;
}

// ---- lifecycle ----

const target = (i) => C.urls[(C.firstIndex + i) % C.urls.length];
const addr = (i) => C.addrs[(C.firstIndex + i) % C.addrs.length];
// Binding a source address with port 0 makes the kernel search that address's bound ports for
// a free one, O(ports in use): past 400k members it took a fifth of the machine (perf:
// inet_bind2_bucket_*). An explicit port is one bucket lookup. Member g of the whole fleet
// gets port floor(g / addrs) on address g % addrs; each retry moves to the next window.
const PORT_LO = 10_000;
const PORT_SPAN = 50_000;
function localPort(i) {
  const perAddr = Math.ceil((C.totalMembers ?? C.firstIndex + N) / C.addrs.length);
  return PORT_LO + (((attempts[i] - 1) * perAddr + Math.floor((C.firstIndex + i) / C.addrs.length)) % PORT_SPAN);
}
const roomIdx = (i) => (C.firstIndex + i) % C.rooms.length;
function path(i) {
  const g = C.firstIndex + i;
  const room = encodeURIComponent(C.rooms[roomIdx(i)]);
  if (C.proto === 'sio') return `/socket.io/?EIO=4&transport=websocket&room=${room}`;
  if (C.proto === 'peer') return `/ws?room=${room}`;
  let q = `/ws?room=${room}`;
  // minted per connect attempt and not kept: a token is ~200 bytes a member
  if (C.secret) q += `&token=${mintToken(C.secret, `${C.uidPrefix}${g}`, C.tokenTtlSec)}`;
  return q;
}

function memberOpen(i) {
  state[i] = 2;
  opened++;
  connecting--;
  if (C.proto === 'peer' || C.proto === 'sio') {
    // peers send `joined` themselves (uws/ws) or not at all (sio: baseline = first batch)
  }
}

const retryQueue = [];
function memberGone(i, reason) {
  const was = state[i];
  socks[i] = undefined;
  pend[i] = undefined;
  if (was === 1) {
    connecting--;
    if (attempts[i] < C.retries && !stopping) {
      retryQueue.push(i);
      state[i] = 0;
      bump(failReasons, `retried: ${reason}`);
    } else {
      state[i] = 5;
      failed++;
      bump(failReasons, reason);
    }
    return;
  }
  if (was === 2 || was === 3) {
    opened--;
    if (was === 3) joined--;
    closed++;
    if (!stopping) bump(W.closes, reason);
  }
  state[i] = 4;
}

let stopping = false;
let nextIndex = 0;
let connectTimer;
function startConnecting() {
  const t0 = Date.now();
  let started = 0;
  let lastSweep = t0;
  connectTimer = setInterval(() => {
    const now = Date.now();
    // a handshake that takes too long counts as a failure (then a bounded retry); swept once a second
    if (connecting > 0 && now - lastSweep >= 1000) {
      lastSweep = now;
      for (let i = 0; i < N; i++) {
        if (state[i] === 1 && now - startedAt[i] > C.connectTimeoutMs) {
          if (socks[i]) {
            socks[i].err = 'timeout';
            if (C.client === 'ws') socks[i].terminate();
            else socks[i].destroy();
          }
        }
      }
    }
    const allowed = Math.floor(((now - t0) / 1000) * C.connectRate) - started;
    let budget = Math.min(allowed, C.maxPending - connecting);
    while (budget-- > 0) {
      let i;
      if (retryQueue.length) i = retryQueue.shift();
      else if (nextIndex < N) i = nextIndex++;
      else break;
      state[i] = 1;
      attempts[i]++;
      startedAt[i] = now;
      connecting++;
      started++;
      if (C.client === 'ws') wsConnect(i);
      else liteConnect(i);
    }
    if (nextIndex >= N && retryQueue.length === 0 && connecting === 0) clearInterval(connectTimer);
  }, 10);
}

// ---- senders (storm) and ping probe ----

let sendTimer;
let refSeq = 0;
function startSending() {
  const S = Math.min(C.senders ?? 0, N);
  let chatCredit = 0, likeCredit = 0, chatPtr = 0, likePtr = 0;
  const bodyPad = 'x'.repeat(Math.max(0, (C.bodyBytes ?? 24) - 12));
  let lastTick = Date.now();
  const deadline = Date.now() + (C.sendMaxMs ?? 600_000);
  sendTimer = setInterval(() => {
    const now = Date.now();
    if (now > deadline) return clearInterval(sendTimer);
    const dt = (now - lastTick) / 1000;
    lastTick = now;
    if (S > 0) {
      chatCredit += S * (C.chatPerSec ?? 0) * dt;
      likeCredit += S * (C.likesPerSec ?? 0) * dt;
      const room = (i) => C.rooms[roomIdx(i)];
      for (let k = Math.floor(chatCredit); k > 0; k--, chatCredit--) {
        const i = chatPtr++ % S;
        if (sendOp(i, { op: 'send', ref: ++refSeq * 2, room: room(i), kind: 'chat', body: `c${refSeq} ${bodyPad}` })) W.sent.chat++;
      }
      // A frame of `likeCount` likes (the SDK sums a second of a member's taps into one).
      const per = C.likeCount ?? 1;
      for (; likeCredit >= per; likeCredit -= per) {
        const i = likePtr++ % S;
        // Without ref (as the SDK's like() sends them) the server sends no ack; --like-ref acks each.
        const like = C.likeRef ? { op: 'send', ref: ++refSeq * 2 + 1, room: room(i), kind: 'like' } : { op: 'send', room: room(i), kind: 'like' };
        if (per > 1) like.count = per;
        if (sendOp(i, like)) (W.sent.like += per), W.sent.likeFrames++;
      }
    }
  }, 50);
}

let pingTimer;
/** Pings go round the first few sockets: more samples for the p99, one socket's stall not counted twice. */
const PING_SOCKETS = 8;
let pingNext = 0;
function startPinging() {
  pingTimer = setInterval(() => {
    const ref = ++refSeq * 2;
    if (sendOp(pingNext++ % Math.min(PING_SOCKETS, N), { op: 'ping', ref })) {
      pingSent.set(ref, Date.now());
      W.sent.ping++;
    }
    if (pingSent.size > 100) pingSent.clear();
  }, C.pingEveryMs);
}

let heartbeatTimer;
let heartbeatNext = 0;
/**
 * The SDK's heartbeat in a silent room: every member sends a `ping` op (with a ref, as the SDK
 * does) once per `everyMs`, spread evenly over the members.
 */
function startHeartbeats(everyMs) {
  let credit = 0;
  let last = Date.now();
  heartbeatTimer = setInterval(() => {
    const now = Date.now();
    credit += (N * (now - last)) / everyMs;
    last = now;
    for (; credit >= 1; credit--) if (sendOp(heartbeatNext++ % N, { op: 'ping', ref: ++refSeq * 2 })) W.sent.ping++;
  }, 100);
}

// ---- stats and commands ----

function counts() {
  const mu = process.memoryUsage();
  return {
    members: N, opened, joined, failed, closed, connecting,
    pendingStart: N - nextIndex + retryQueue.length,
    rss: mu.rss, rssStart, heapUsed: mu.heapUsed, cpu: process.cpuUsage(),
  };
}

let windowAt = performance.now(); // this window's start, for rates over exactly its length

function windowStats(reset) {
  const now = performance.now();
  const out = {
    ...counts(),
    windowMs: now - windowAt,
    ...structuredClone(W),
    lat: lat.toJSON(), frameLat: frameLat.toJSON(), hiLat: hiLat.toJSON(), rtt: rtt.toJSON(),
    failReasons: { ...failReasons },
    lostSamples: closeLog.slice(0, 3).length ? closeLog.slice(0, 3) : undefined,
  };
  if (reset) {
    windowAt = now;
    for (const k of ['frames', 'msgs', 'bytes', 'gapEvents', 'missed', 'dups', 'chat0', 'likes0', 'msgs0', 'lastFrameAt', 'firstFrameAt', 'other', 'membersFrames', 'pongs']) W[k] = 0;
    W.acks = { chatShown: 0, chatHidden: 0, likeShown: 0, likeHidden: 0 };
    W.unrefErrors = 0;
    W.errors = {};
    W.sent = { chat: 0, like: 0, likeFrames: 0, ping: 0 };
    W.closes = {};
    lat.reset(); frameLat.reset(); hiLat.reset(); rtt.reset();
  }
  return out;
}

/** Tail check: every member's last seq must equal its room's seq; sets the baseline. */
function expect(seqs) {
  let behind = 0, behindSeqs = 0, ahead = 0, unknown = 0, notOpen = 0;
  for (let i = 0; i < N; i++) {
    const want = seqs[roomIdx(i)];
    if (want === undefined || want === null) continue;
    if (state[i] !== 2 && state[i] !== 3) {
      notOpen++;
      continue;
    }
    const l = last[i];
    if (l < 0) unknown++;
    else if (l < want) {
      behind++;
      behindSeqs += want - l;
      missed[i] += want - l;
    } else if (l > want) ahead++;
    last[i] = want;
  }
  let withMisses = 0, maxMissed = 0, totalMissed = 0;
  for (let i = 0; i < N; i++) {
    if (missed[i] > 0) {
      withMisses++;
      totalMissed += missed[i];
      if (missed[i] > maxMissed) maxMissed = missed[i];
    }
  }
  return { behind, behindSeqs, ahead, unknown, notOpen, withMisses, maxMissed, totalMissed };
}

function reached(seqs) {
  let at = 0, open = 0;
  for (let i = 0; i < N; i++) {
    if (state[i] !== 2 && state[i] !== 3) continue;
    open++;
    const want = seqs[roomIdx(i)];
    if (last[i] >= want) at++;
  }
  return { reached: at, open, lastFrameAt: W.lastFrameAt };
}

function stopAll() {
  stopping = true;
  clearInterval(connectTimer);
  clearInterval(sendTimer);
  clearInterval(pingTimer);
  clearInterval(heartbeatTimer);
  for (let i = 0; i < N; i++) {
    const s = socks[i];
    if (!s) continue;
    if (C.client === 'ws') s.terminate();
    else if (s.readyState === 'open') s.resetAndDestroy(); // RST: no TIME_WAIT holding the member's port
    else s.destroy();
  }
}

process.on('message', async (m) => {
  const reply = (data) => process.send?.({ id: m.id, ...data });
  switch (m.type) {
    case 'start':
      rssStart = process.memoryUsage().rss;
      C = m.config;
      N = C.members;
      last = new Float64Array(N).fill(-1);
      missed = new Uint32Array(N);
      state = new Uint8Array(N);
      attempts = new Uint8Array(N);
      startedAt = new Float64Array(N);
      socks = new Array(N);
      pend = new Array(N);
      if (C.client === 'ws') WebSocketClass = (await import('ws')).WebSocket;
      startConnecting();
      reply({ ok: true });
      break;
    case 'debug': {
      const h = {};
      for (let i = 0; i < N; i++) h[state[i]] = (h[state[i]] ?? 0) + 1;
      const odd = [];
      for (let i = 0; i < N && odd.length < 5; i++) if (state[i] !== 3) odd.push({ i, s: state[i], a: attempts[i], last: last[i], sock: !!socks[i], hs: socks[i]?.hs, err: socks[i]?.err });
      reply({ h, odd, closeLog });
      break;
    }
    case 'counts':
      reply(counts());
      break;
    case 'window':
      reply(windowStats(!!m.reset));
      break;
    case 'expect':
      reply(expect(m.seqs));
      break;
    case 'reached':
      reply(reached(m.seqs));
      break;
    case 'send':
      Object.assign(C, m.config);
      clearInterval(sendTimer);
      startSending();
      reply({ ok: true });
      break;
    case 'stopConnecting':
      // the connect phase is over: no new attempts; those in flight finish or time out
      nextIndex = N;
      retryQueue.length = 0;
      reply(counts());
      break;
    case 'stopSending':
      clearInterval(sendTimer);
      reply({ ok: true });
      break;
    case 'ping':
      C.pingEveryMs = m.everyMs;
      clearInterval(pingTimer);
      if (m.everyMs > 0) startPinging();
      reply({ ok: true });
      break;
    case 'heartbeat':
      clearInterval(heartbeatTimer);
      if (m.everyMs > 0) startHeartbeats(m.everyMs);
      reply({ ok: true });
      break;
    case 'stop':
      stopAll();
      reply({ ok: true });
      setTimeout(() => process.exit(0), 200);
      break;
  }
});
process.on('disconnect', () => {
  stopAll();
  process.exit(0);
});
// A generator never outlives its bound.
setTimeout(() => process.exit(4), Number(process.env.GEN_MAX_MS ?? 3_600_000)).unref();
