// Hardening: slow readers at scale. A thousand members of one room stop reading (in a helper
// process, with small socket buffers as on a slow mobile link) while a sender floods the room
// with large chat. The worker's memory must stay bounded (uWS skips frames for sockets over
// maxBackpressure instead of buffering them), the skipped frames must be counted, a member that
// keeps reading must get every acknowledged message, and readers that stop and then resume must
// recover what they missed with `join` + `since` (recovered:true).
//
// HARDENING_SLOW_READERS=5000 runs a larger version (the default is 1000).
import { readFileSync } from 'node:fs';
import { decode } from '@msgpack/msgpack';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { NO_FRAME_BUDGET, startTestNode, token, wsUrl } from './helpers.js';
import { FuzzClient, forceGc, hasPython, metric, mp, rssMb, sleep, SlowReaders } from './fuzz-helpers.js';

const MAX_BACKPRESSURE = 16384;
const READERS = Number(process.env.HARDENING_SLOW_READERS ?? 1000);
const BODY = 12_000;
const ROOM = 'slow-room';

/** Covered seq ranges, merged. */
class Ranges {
  private r: Array<[number, number]> = [];
  add(from: number, to: number): void {
    this.r.push([from, to]);
    this.r.sort((a, b) => a[0] - b[0]);
    const out: Array<[number, number]> = [];
    for (const [a, b] of this.r) {
      const last = out[out.length - 1];
      if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
      else out.push([a, b]);
    }
    this.r = out;
  }
  covers(seq: number): boolean {
    return this.r.some(([a, b]) => seq >= a && seq <= b);
  }
  /** Highest seq reached contiguously from `start`. */
  contiguousFrom(start: number): number {
    const hit = this.r.find(([a, b]) => start >= a && start <= b + 1);
    return hit ? hit[1] : start - 1;
  }
}

/**
 * A member that keeps only what it needs to check the stream: seq ranges, its epoch, and
 * whether it had to recover. On a gap it re-joins with `since` = the last seq it holds
 * contiguously, exactly as PROTOCOL §4 tells a client to.
 */
class SeqReader {
  readonly ranges = new Ranges();
  bytes = 0;
  largestFrame = 0;
  epoch = '';
  startSeq = 0;
  gaps = 0;
  recovered: boolean[] = [];
  private expected = 0;
  private rejoining = false;
  readonly ready: Promise<void>;
  private pongs = new Map<number, (ms: number) => void>();

  constructor(readonly ws: WebSocket, readonly name: string) {
    ws.on('error', () => undefined);
    this.ready = new Promise((resolve, reject) => {
      ws.once('unexpected-response', (_q, res) => reject(new Error(`${name}: upgrade refused ${res.statusCode}`)));
      ws.on('message', (data: Buffer) => {
        this.bytes += data.byteLength;
        this.largestFrame = Math.max(this.largestFrame, data.byteLength);
        const f = decode(data) as Record<string, unknown>;
        if (f.op === 'joined') {
          if (this.expected === 0) {
            this.epoch = f.epoch as string;
            this.startSeq = (f.seq as number) + 1;
            this.expected = this.startSeq;
            resolve();
          } else {
            this.recovered.push(f.recovered === true);
            this.rejoining = false;
          }
        } else if (f.op === 'batch') {
          const from = f.from as number;
          const to = f.to as number;
          this.ranges.add(from, to);
          if (from > this.expected && !this.rejoining) {
            this.gaps++;
            this.rejoining = true;
            const since = this.ranges.contiguousFrom(this.startSeq);
            ws.send(mp({ op: 'join', room: ROOM, since, epoch: this.epoch, ref: 1 }));
          }
          this.expected = Math.max(this.expected, this.ranges.contiguousFrom(this.startSeq) + 1);
        } else if (f.op === 'pong') {
          this.pongs.get(f.ref as number)?.(Date.now());
        }
      });
    });
  }

  static async join(port: number, tok: string, name: string): Promise<SeqReader> {
    const r = new SeqReader(new WebSocket(wsUrl(port, { token: tok, room: ROOM })), name);
    await r.ready;
    return r;
  }

  /** Stops reading: the kernel buffers fill, then the server's, then uWS skips frames. */
  pause(): void {
    (this.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  }

  resume(): void {
    (this.ws as unknown as { _socket: { resume(): void } })._socket.resume();
  }

  async ping(ref: number): Promise<number> {
    const t0 = Date.now();
    return new Promise((resolve) => {
      this.pongs.set(ref, (t) => resolve(t - t0));
      this.ws.send(mp({ op: 'ping', ref }));
    });
  }

  missing(seqs: Iterable<number>): number[] {
    return [...seqs].filter((s) => !this.ranges.covers(s));
  }

  close(): void {
    this.ws.terminate();
  }
}

/** Bytes a paused loopback socket can soak up before the server sees backpressure (generous). */
function kernelAbsorption(): number {
  const max = (p: string) => Number(readFileSync(p, 'utf8').trim().split(/\s+/)[2]);
  const def = (p: string) => Number(readFileSync(p, 'utf8').trim().split(/\s+/)[1]);
  try {
    return max('/proc/sys/net/ipv4/tcp_wmem') + 2 * def('/proc/sys/net/ipv4/tcp_rmem');
  } catch {
    return 8 * 1048576;
  }
}

describe.skipIf(!hasPython())(`${READERS} slow readers in one room`, () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({
      ...NO_FRAME_BUDGET, // the sender floods on purpose
      tickMs: 20,
      secret: 'slow-secret-0123456789abcdef0123456789',
      connectRate: 0,
      maxBackpressure: MAX_BACKPRESSURE,
      maxBodyBytes: BODY,
      chatRate: 100_000,
      chatBurst: 100_000,
      roomChatBudget: 100_000,
      history: 5000,
    });
  });
  afterAll(() => node?.stop());

  it('memory stays bounded, drops are counted, a reading member gets everything, resumed readers recover', async () => {
    forceGc();
    const rss0 = rssMb();
    const tokens = await Promise.all(Array.from({ length: READERS }, (_, i) => token(node, { uid: `slow-${i}` })));
    const t0 = Date.now();
    const slow = await SlowReaders.start(node.port, ROOM, tokens, 120_000);
    const connectMs = Date.now() - t0;
    try {
      expect(await metric(node.port, 'roomcast_connections')).toBe(READERS);
      const normal = await SeqReader.join(node.port, await token(node, { uid: 'reader-normal' }), 'normal');
      const resumers = await Promise.all(Array.from({ length: 10 }, async (_, i) => SeqReader.join(node.port, await token(node, { uid: `resumer-${i}` }), `resumer-${i}`)));
      for (const r of resumers) r.pause();
      const sender = await FuzzClient.open(wsUrl(node.port, { token: await token(node, { uid: 'flooder' }), room: ROOM }));
      await sender.until(() => sender.frames.some((f) => f.op === 'joined'));
      forceGc();
      const rssBase = rssMb();
      const dropsBefore = await metric(node.port, 'roomcast_backpressure_drops_total');

      // Flood until the reading member has received enough that every paused socket must
      // have overflowed its kernel buffers and its maxBackpressure (capped at 40 MB / 60 s).
      // Four messages in flight at a time: batches of up to ~48 KB, as a busy room makes.
      const target = kernelAbsorption() + 2 * 1048576;
      const body = 'b'.repeat(BODY);
      let sent = 0;
      let rssMax = rssBase;
      let rssThird: number | undefined;
      const acked = () => sender.frames.filter((f) => f.op === 'ack' || f.op === 'error').length;
      const floodStart = Date.now();
      while (normal.bytes < target && normal.bytes < 40 * 1048576 && Date.now() - floodStart < 60_000) {
        for (let k = 0; k < 4; k++) sender.send(mp({ op: 'send', room: ROOM, kind: 'chat', body, ref: ++sent }));
        await sender.until(() => acked() >= sent, 10_000);
        if (sent % 30 === 0) rssMax = Math.max(rssMax, rssMb());
        if (rssThird === undefined && normal.bytes > target / 3) {
          forceGc();
          rssThird = rssMb();
        }
      }
      const floodMs = Date.now() - floodStart;
      const acks = sender.frames.filter((f) => f.op === 'ack');
      expect(sender.frames.filter((f) => f.op === 'error'), 'sender errors').toEqual([]);
      expect(acks.every((a) => a.shown === true)).toBe(true);
      const ackedSeqs = new Set(acks.map((a) => a.seq as number));
      const lastSeq = Math.max(...ackedSeqs);
      // The reading member catches up with the last acknowledged seq.
      const deadline = Date.now() + 20_000;
      while (!normal.ranges.covers(lastSeq) && Date.now() < deadline) await sleep(20);
      rssMax = Math.max(rssMax, rssMb());
      forceGc();
      const rssAfter = rssMb();

      // 1. Memory. uWS stops queueing for a socket once its buffer is over maxBackpressure, so
      // a stalled member holds at most maxBackpressure plus one batch frame; RSS grows by
      // about that per member (plus allocator overhead, within the fixed allowance), and then
      // stays flat however long the flood goes on.
      const frame = normal.largestFrame;
      const bound = ((MAX_BACKPRESSURE + frame) * (READERS + 12)) / 1048576 + 100;
      expect(rssMax - rssBase, `RSS grew ${Math.round(rssMax - rssBase)} MB (bound ${Math.round(bound)} MB)`).toBeLessThan(bound);
      expect(rssAfter - (rssThird ?? rssBase), 'RSS growth over the last two thirds of the flood').toBeLessThan(40);

      // 2. Drops are counted: every stalled reader missed frames.
      const drops = (await metric(node.port, 'roomcast_backpressure_drops_total')) - dropsBefore;
      expect(drops).toBeGreaterThanOrEqual(READERS);

      // 3. The member that kept reading got every acknowledged message, without a gap.
      expect(normal.missing(ackedSeqs)).toEqual([]);
      expect(normal.gaps).toBe(0);
      const rtt = await normal.ping(424242);
      expect(rtt).toBeLessThan(2000);

      if (process.env.HARDENING_DEBUG) console.log('DEBUG flood', floodMs, 'ms', sent, 'msgs', normal.bytes, 'B to normal; target', target, 'resumer bytes', resumers.map((r) => r.bytes).join(','));
      // 4. Readers that resume read their backlog, see the gap at the next live batch, re-join
      // with since and get everything back. The room stays live meanwhile.
      for (const r of resumers) r.resume();
      const rdeadline = Date.now() + 30_000;
      const live = new Set<number>();
      while (Date.now() < rdeadline) {
        const ref = ++sent;
        sender.send(mp({ op: 'send', room: ROOM, kind: 'chat', body: `live ${ref}`, ref }));
        await sender.until(() => sender.frames.some((f) => f.ref === ref), 10_000);
        const a = sender.frames.find((f) => f.ref === ref)!;
        if (a.op === 'ack' && a.shown === true) live.add(a.seq as number);
        await sleep(50);
        if (live.size >= 5 && resumers.every((r) => r.missing([...ackedSeqs, ...live]).length === 0)) break;
      }
      for (const s of live) ackedSeqs.add(s);
      if (process.env.HARDENING_DEBUG) console.log('DEBUG resumed', resumers.map((r) => `${r.bytes}/${r.gaps}/${r.recovered}`).join(' '));
      for (const r of resumers) {
        expect(r.gaps, `${r.name} saw a gap`).toBeGreaterThan(0);
        expect(r.recovered, `${r.name} re-joins`).toContain(true);
        expect(r.missing(ackedSeqs).length, `${r.name} missing`).toBe(0);
      }
      console.log(
        `slow readers: ${READERS} connected in ${connectMs} ms; flood ${sent} x ${BODY} B in ${floodMs} ms (${Math.round(normal.bytes / 1048576)} MB to the reading member); ` +
          `drops ${drops}; largest frame ${frame} B; RSS start ${Math.round(rss0)} MB, base ${Math.round(rssBase)} MB, max ${Math.round(rssMax)} MB, ` +
          `after ${Math.round(rssAfter)} MB (growth bound ${Math.round(bound)} MB; a third in ${Math.round((rssThird ?? 0) - rssBase)} MB); ` +
          `ping ${rtt} ms; resumers recovered ${resumers.map((r) => r.recovered.filter(Boolean).length).join(',')}`,
      );
      for (const r of [normal, ...resumers]) r.close();
      sender.close();
    } finally {
      await slow.close();
    }
  }, 180_000);
});
