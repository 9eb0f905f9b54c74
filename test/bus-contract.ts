// The one contract every Bus implementation passes (run by bus-memory.test.ts and
// bus-redis.test.ts). Buses are built with CONTRACT_HISTORY so trimming is observable.
import { afterEach, describe, expect, it } from 'vitest';
import { decode } from '@msgpack/msgpack';
import type { Bus, BusHandler, ControlCommand, EntryBody, LogEntry, PackedBody, RoomHead } from '../src/bus/bus.js';
import { packEntry, unpackMsgs } from '../src/bus/entry.js';
import { encodeFrame } from '../src/protocol/codec.js';
import { encodeBatch } from '../src/tick/batch.js';

export const CONTRACT_HISTORY = 5;

export interface BusUnderTest {
  /** A fresh, unstarted bus with history CONTRACT_HISTORY and a namespace of its own. */
  bus: Bus;
  cleanup: () => Promise<void>;
  /** Another unstarted worker on the same namespace; absent for a single-process bus. */
  peer?: () => Promise<Bus>;
}

/** Records what a bus delivers. */
export class Recorder implements BusHandler {
  readonly entries: Array<{ room: string; epoch: string; entry: LogEntry }> = [];
  readonly controls: ControlCommand[] = [];
  readonly availability: boolean[] = [];

  onEntries(room: string, epoch: string, entries: LogEntry[]): void {
    for (const entry of entries) this.entries.push({ room, epoch, entry });
  }
  onControl(cmd: ControlCommand): void {
    this.controls.push(cmd);
  }
  onAvailability(available: boolean): void {
    this.availability.push(available);
  }
  of(room: string): Array<{ epoch: string; entry: LogEntry }> {
    return this.entries.filter((e) => e.room === room);
  }
  seqs(room: string): number[] {
    return this.of(room).map((e) => e.entry.seq);
  }
}

export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Long enough for any implementation to have delivered what it was going to deliver. */
const SETTLE_MS = 300;

let bodies = 0;
/** A distinct entry body exercising the shapes a tick appends (`extra` more chat messages). */
export function rawBody(likes = 0, extra = 0): EntryBody {
  const n = ++bodies;
  return {
    msgs: [
      { u: `u${n}`, n: 'Zoë 🎉', k: 'chat', b: `hello #${n}`, t: 1_700_000_000_000 + n },
      { u: 'shop', k: 'gift', b: { sku: 'rose', qty: n }, t: 1_700_000_000_001, x: { tier: 2, tags: ['vip'] } },
      ...Array.from({ length: extra }, (_, i) => ({ u: `v${i}`, k: 'chat', b: 'x'.repeat(i), t: 1_700_000_000_002 + i })),
    ],
    likes,
    ts: Date.now(),
  };
}

/** rawBody as a tick appends it: its messages encoded once. */
export function body(likes = 0): PackedBody {
  return packEntry(rawBody(likes));
}

function heads(results: Array<RoomHead | Error>): RoomHead[] {
  return results.map((r) => {
    if (r instanceof Error) throw r;
    return r;
  });
}

export function busContract(name: string, makeBus: () => Promise<BusUnderTest>): void {
  describe(`Bus contract: ${name}`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });

    async function started(): Promise<{ bus: Bus; rec: Recorder; peer?: () => Promise<{ bus: Bus; rec: Recorder }> }> {
      const t = await makeBus();
      cleanups.push(t.cleanup);
      const rec = new Recorder();
      await t.bus.start(rec);
      const makePeer = t.peer;
      if (!makePeer) return { bus: t.bus, rec };
      return {
        bus: t.bus,
        rec,
        peer: async () => {
          const bus = await makePeer();
          const prec = new Recorder();
          await bus.start(prec);
          cleanups.push(() => bus.close());
          return { bus, rec: prec };
        },
      };
    }

    it('gives contiguous seqs per room across many appends and rooms in one call, with a stable epoch', async () => {
      const { bus } = await started();
      const rooms = ['alpha', 'beta', 'gamma.1'];
      const got = new Map<string, RoomHead[]>(rooms.map((r) => [r, []]));
      for (let i = 0; i < 15; i++) {
        const res = heads(await bus.append(rooms.map((room) => ({ room, entry: body() }))));
        res.forEach((h, j) => got.get(rooms[j]!)!.push(h));
      }
      for (const room of rooms) {
        const hs = got.get(room)!;
        expect(hs.map((h) => h.seq)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
        expect(new Set(hs.map((h) => h.epoch)).size).toBe(1);
        expect(await bus.head(room)).toEqual({ epoch: hs[0]!.epoch, seq: 15 });
      }
      // Results follow the items' order, a room appearing twice gets consecutive seqs.
      const mixed = heads(await bus.append([{ room: 'beta', entry: body() }, { room: 'alpha', entry: body() }, { room: 'beta', entry: body() }]));
      expect(mixed.map((h) => h.seq)).toEqual([16, 16, 17]);
      // Fifty rooms in one call: each starts its own log at 1.
      const many = heads(await bus.append(Array.from({ length: 50 }, (_, i) => ({ room: `many-${i}`, entry: body() }))));
      expect(many.map((h) => h.seq)).toEqual(Array(50).fill(1));
    });

    it('reports an empty room at seq 0 with an epoch that its first append keeps', async () => {
      const { bus } = await started();
      const h1 = await bus.head('fresh');
      const h2 = await bus.head('fresh');
      expect(h1.seq).toBe(0);
      expect(h1.epoch).toMatch(/\S/);
      expect(h2).toEqual(h1);
      expect(heads(await bus.append([{ room: 'fresh', entry: body() }]))).toEqual([{ epoch: h1.epoch, seq: 1 }]);
    });

    it('delivers to a follower only the entries after its head, in order, exactly once', async () => {
      const { bus, rec } = await started();
      for (let i = 0; i < 3; i++) heads(await bus.append([{ room: 'live', entry: body() }]));
      const head = await bus.follow('live');
      expect(head.seq).toBe(3);
      const sent: PackedBody[] = [];
      for (let i = 0; i < 10; i++) {
        const entry = body(i);
        sent.push(entry);
        heads(await bus.append([{ room: 'live', entry }, { room: 'unfollowed', entry: body() }]));
        if (i % 3 === 0) await sleep(20);
      }
      await until(() => rec.of('live').length >= 10, '10 live entries');
      await sleep(SETTLE_MS);
      expect(rec.seqs('live')).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
      expect(rec.of('live').map((e) => e.epoch)).toEqual(Array(10).fill(head.epoch));
      expect(rec.of('live').map((e) => e.entry)).toEqual(sent.map((entry, i) => ({ ...entry, seq: 4 + i })));
      expect(rec.of('unfollowed')).toEqual([]);
    });

    it('stops delivery on unfollow; a new follow starts after the new head', async () => {
      const { bus, rec } = await started();
      await bus.follow('door');
      heads(await bus.append([{ room: 'door', entry: body() }]));
      await until(() => rec.of('door').length === 1, 'first entry');
      bus.unfollow('door');
      heads(await bus.append([{ room: 'door', entry: body() }]));
      heads(await bus.append([{ room: 'door', entry: body() }]));
      await sleep(SETTLE_MS);
      expect(rec.seqs('door')).toEqual([1]);
      expect((await bus.follow('door')).seq).toBe(3);
      heads(await bus.append([{ room: 'door', entry: body() }]));
      await until(() => rec.of('door').length === 2, 'entry after re-follow');
      await sleep(SETTLE_MS);
      expect(rec.seqs('door')).toEqual([1, 4]);
    });

    it('serves ranges for recovery, honouring afterSeq and limit', async () => {
      const { bus } = await started();
      const sent = [body(), body(2), body()];
      let epoch = '';
      for (const entry of sent) epoch = heads(await bus.append([{ room: 'rec', entry }]))[0]!.epoch;
      expect(await bus.range('rec', 0, 10)).toEqual({ epoch, entries: sent.map((e, i) => ({ ...e, seq: i + 1 })), oldest: 1, head: 3 });
      const one = await bus.range('rec', 1, 1);
      expect(one.entries.map((e) => e.seq)).toEqual([2]);
      expect(one.entries[0]).toEqual({ ...sent[1], seq: 2 });
      expect(await bus.range('rec', 3, 10)).toEqual({ epoch, entries: [], oldest: 1, head: 3 });
      const empty = await bus.range('nobody-here', 0, 10);
      expect(empty).toMatchObject({ entries: [], oldest: 1, head: 0 });
      expect((await bus.head('nobody-here')).epoch).toBe(empty.epoch);
    });

    it('keeps exactly the last `history` entries recoverable', async () => {
      const { bus } = await started();
      for (let i = 0; i < 12; i++) heads(await bus.append([{ room: 'trim', entry: body() }]));
      const all = await bus.range('trim', 0, 100);
      expect(all.entries.map((e) => e.seq)).toEqual([8, 9, 10, 11, 12]);
      expect(all).toMatchObject({ oldest: 8, head: 12 });
      expect((await bus.range('trim', 9, 2)).entries.map((e) => e.seq)).toEqual([10, 11]);
      // Asking from before the oldest entry: the caller sees oldest > afterSeq + 1 (a gap).
      expect((await bus.range('trim', 2, 100)).oldest).toBe(8);
      for (let i = 0; i < 200; i++) heads(await bus.append([{ room: 'trim', entry: body() }]));
      const later = await bus.range('trim', 0, 1000);
      expect(later.entries.map((e) => e.seq)).toEqual([208, 209, 210, 211, 212]);
      expect(later).toMatchObject({ oldest: 208, head: 212 });
    });

    it('delivers control commands to its own handler, in order', async () => {
      const { bus, rec } = await started();
      const cmds: ControlCommand[] = [
        { type: 'kick', room: 'r1', uid: 'troll', reason: 'spam', untilMs: 1_700_000_060_000 },
        { type: 'mute', room: 'r1', uid: 'loud', untilMs: 1_700_000_300_000 },
        { type: 'mute', room: 'r2', untilMs: 0 },
      ];
      for (const c of cmds) await bus.control(c);
      await until(() => rec.controls.length >= 3, 'three control commands');
      await sleep(SETTLE_MS);
      expect(rec.controls).toEqual(cmds);
    });

    it('answers members and topRooms from the reported counts', async () => {
      const { bus } = await started();
      bus.reportMembers(new Map([['a', 3], ['b', 10], ['c', 1]]));
      await until(() => bus.members('a') === 3 && bus.members('b') === 10, 'reported counts');
      expect(bus.members('nowhere')).toBe(0);
      expect(bus.topRooms(2)).toEqual([['b', 10], ['a', 3]]);
      bus.reportMembers(new Map([['b', 4]]));
      await until(() => bus.members('a') === 0 && bus.members('b') === 4, 'updated counts');
      expect(bus.topRooms(5)).toEqual([['b', 4]]);
    });

    it('sums member counts of workers; a worker that stops heartbeating drops out', async (ctx) => {
      const { bus, peer } = await started();
      if (!peer) return ctx.skip();
      const p = await peer();
      bus.reportMembers(new Map([['a', 3]]));
      p.bus.reportMembers(new Map([['a', 2], ['z', 7]]));
      await until(() => bus.members('a') === 5 && bus.members('z') === 7 && p.bus.members('a') === 5, 'summed counts');
      expect(bus.topRooms(2)).toEqual([['z', 7], ['a', 5]]);
      await p.bus.close();
      await until(() => bus.members('a') === 3 && bus.members('z') === 0, 'dead worker to drop out', 5000);
      expect(bus.topRooms(5)).toEqual([['a', 3]]);
    });

    it('carries each entry as its encoded messages: a batch spliced from them has the bytes encodeFrame gives', async () => {
      const { bus } = await started();
      // A likes-only entry, and entries past 15 messages (16-bit array headers) among small ones.
      const raw = [rawBody(), { msgs: [], likes: 7, ts: Date.now() }, rawBody(3, 20), rawBody(0, 40)];
      let epoch = '';
      for (const b of raw) epoch = heads(await bus.append([{ room: 'splice', entry: packEntry(b) }]))[0]!.epoch;
      const { entries } = await bus.range('splice', 0, 10);
      expect(entries.map((e) => unpackMsgs(e))).toEqual(raw.map((b) => b.msgs));
      expect(entries.map((e) => e.count)).toEqual(raw.map((b) => b.msgs.length));
      for (const [from, to] of [[1, 4], [1, 1], [2, 2], [3, 4]] as const) {
        const part = entries.slice(from - 1, to);
        const msgs = raw.slice(from - 1, to).flatMap((b) => b.msgs);
        const likes = raw.slice(from - 1, to).reduce((n, b) => n + b.likes, 0);
        const object = encodeFrame({ op: 'batch', room: 'splice', epoch, from, to, msgs, likes: likes > 0 ? likes : undefined });
        const spliced = encodeBatch('splice', epoch, part);
        expect(decode(spliced), `${from}..${to}`).toEqual(decode(object));
        expect(Buffer.from(spliced).equals(Buffer.from(object)), `${from}..${to} byte for byte`).toBe(true);
      }
    });

    it('carries entries and control commands across workers, commands in one order everywhere', async (ctx) => {
      const { bus, rec, peer } = await started();
      if (!peer) return ctx.skip();
      const p = await peer();
      const head = await p.bus.follow('shared');
      const entry = body(5);
      const [mine] = heads(await bus.append([{ room: 'shared', entry }]));
      expect(mine).toEqual({ epoch: head.epoch, seq: head.seq + 1 });
      await until(() => p.rec.of('shared').length === 1, 'entry at the peer');
      expect(p.rec.of('shared')).toEqual([{ room: 'shared', epoch: head.epoch, entry: { ...entry, seq: 1 } }]);
      const a: ControlCommand = { type: 'mute', room: 'shared', uid: 'x', untilMs: 1 };
      const b: ControlCommand = { type: 'kick', room: 'shared', uid: 'y', untilMs: 2 };
      await Promise.all([bus.control(a), p.bus.control(b)]);
      await until(() => rec.controls.length === 2 && p.rec.controls.length === 2, 'both commands on both workers');
      expect(rec.controls).toEqual(p.rec.controls);
      expect(rec.controls).toEqual(expect.arrayContaining([a, b]));
    });
  });
}
