// What the peers share: flags, the per-room outbox and a fixed (non-adaptive) tick that
// turns each room's pending messages into one batch frame with a contiguous seq, and, with
// several workers, a minimal Redis pub/sub relay (worker 0 ticks; every worker fans out).
// The frames are roomcast-shaped ({op:'batch', room, epoch, from, to, msgs}) so the same
// load generator checks seqs and latency for every contender.
import { Redis } from 'ioredis';

// A peer never outlives the bench that started it (even one killed with SIGKILL).
const parent = process.ppid;
setInterval(() => process.ppid !== parent && process.exit(0), 2000).unref();

export function peerFlags(argv = process.argv.slice(2)) {
  const o = { port: 0, index: 0, workers: 1, redis: null, tickMs: 50, maxBackpressure: 256 * 1024, host: '127.0.0.1', asyncUpgrade: 0, idleTimeoutSec: 60 };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_m, c) => c.toUpperCase());
    const v = argv[i + 1];
    o[k] = k === 'redis' || k === 'host' ? v : Number(v);
  }
  if (o.workers > 1 && !o.redis) throw new Error('peer: several workers need --redis');
  return o;
}

/** Per-room pending messages and last seq; tick() hands one frame per room to `publish`. */
export class PeerRooms {
  constructor() {
    this.pending = new Map();
    this.seqs = new Map();
  }
  push(room, msg) {
    let q = this.pending.get(room);
    if (!q) this.pending.set(room, (q = []));
    q.push(msg);
  }
  seq(room) {
    return this.seqs.get(room) ?? 0;
  }
  /** Returns [{room, seq, msgs}] for rooms with pending messages. */
  take() {
    const out = [];
    for (const [room, msgs] of this.pending) {
      const seq = this.seq(room) + 1;
      this.seqs.set(room, seq);
      out.push({ room, seq, msgs });
    }
    this.pending = new Map();
    return out;
  }
}

/** A fixed-period tick: the next tick is due tickMs after the previous one was due. */
export function fixedTick(tickMs, fn) {
  let due = Date.now() + tickMs;
  const loop = () => {
    fn();
    due += tickMs;
    const now = Date.now();
    if (due < now) due = now; // never burst to catch up
    setTimeout(loop, due - now);
  };
  setTimeout(loop, tickMs);
}

/** Validates a POST body the way the senders send it; returns a Msg or an error string. */
export function toMsg(json) {
  let b;
  try {
    b = JSON.parse(json);
  } catch {
    return 'body must be JSON';
  }
  if (typeof b?.kind !== 'string' || b.body === undefined) return 'kind and body required';
  const m = { u: typeof b.uid === 'string' ? b.uid : 'api', k: b.kind, b: b.body, t: Date.now() };
  if (typeof b.name === 'string') m.n = b.name;
  return m;
}

/**
 * Several workers: ingress goes to Redis channel <p>:in, worker 0 ticks and publishes each
 * frame on <p>:out with the room, and stores seqs in hash <p>:seqs; every worker relays
 * <p>:out to its local sockets. One worker: all local, no Redis.
 */
export async function relay({ o, rooms, encodeFrame, fanout }) {
  const P = 'peer';
  if (o.workers <= 1) {
    fixedTick(o.tickMs, () => {
      for (const b of rooms.take()) fanout(b.room, encodeFrame(b), b.seq);
    });
    return {
      ingress: (room, msg) => rooms.push(room, msg),
      seqs: async () => Object.fromEntries(rooms.seqs),
    };
  }
  const pub = new Redis(o.redis, { protocol: 2 });
  const sub = new Redis(o.redis, { protocol: 2 });
  const local = new Map(); // room -> last seq relayed here
  sub.on('messageBuffer', (channel, buf) => {
    const ch = channel.toString();
    if (ch === `${P}:out`) {
      // [u16 room length][room][u32 seq][frame]
      const rl = buf.readUInt16BE(0);
      const room = buf.toString('utf8', 2, 2 + rl);
      const seq = buf.readUInt32BE(2 + rl);
      local.set(room, seq);
      fanout(room, buf.subarray(6 + rl), seq);
    } else if (ch === `${P}:in` && o.index === 0) {
      const { room, msg } = JSON.parse(buf.toString());
      rooms.push(room, msg);
    }
  });
  await sub.subscribe(`${P}:out`, ...(o.index === 0 ? [`${P}:in`] : []));
  if (o.index === 0) {
    fixedTick(o.tickMs, () => {
      const batches = rooms.take();
      if (batches.length === 0) return;
      const pipe = pub.pipeline();
      for (const b of batches) {
        const frame = encodeFrame(b);
        const rb = Buffer.from(b.room);
        const head = Buffer.allocUnsafe(6 + rb.length);
        head.writeUInt16BE(rb.length, 0);
        rb.copy(head, 2);
        head.writeUInt32BE(b.seq, 2 + rb.length);
        pipe.hset(`${P}:seqs`, b.room, b.seq);
        pipe.publish(`${P}:out`, Buffer.concat([head, Buffer.from(frame)]));
      }
      void pipe.exec();
    });
  }
  return {
    ingress: (room, msg) => (o.index === 0 ? rooms.push(room, msg) : void pub.publish(`${P}:in`, JSON.stringify({ room, msg }))),
    seqs: async () => {
      const h = await pub.hgetall(`${P}:seqs`);
      return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Number(v)]));
    },
    localSeq: (room) => local.get(room) ?? 0,
  };
}
