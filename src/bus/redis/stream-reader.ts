// One blocking XREAD loop over a set of streams, on a connection of its own, paced to at most
// one read per tick while entries keep coming: reading on the tick costs Redis ~3× less per
// message than a read woken by every append, and the pipeline delivers on the tick anyway.
// Idle, it blocks server-side and costs one command per BLOCK period. Between paced reads it
// blocks on the streams' nudge streams, where appends of high-priority messages (gifts,
// system notices) leave a mark: those are read at once, not a tick later. While an append of this
// worker's own is not read back (`owed`), it reads at once too: the entry then goes out in one
// frame with what the other workers appended, not in a frame of its own.
import type { Logger } from 'pino';
import { backoffMs } from '../../util/backoff.js';
import type { Client } from './scripts.js';

export type StreamItem = [id: Buffer, fields: Buffer[]];

export interface StreamReaderOptions {
  conn: Client;
  blockMs: number;
  /** Least time between the starts of two reads that returned entries (the effective tick). */
  paceMs: () => number;
  onItems(key: string, items: StreamItem[]): void;
  /** After every read that returned entries. */
  onReadDone(): void;
  onError(err: unknown): void;
  /** The connection is back after a drop: what it may have missed needs a check. */
  onResumed(): void;
  /** Breaks a BLOCK in progress (CLIENT UNBLOCK from another connection), when available. */
  unblock?: (clientId: number) => Promise<boolean>;
  /** True while this worker's own appends to streams read here are not read back: read at once. */
  owed?: () => boolean;
  /** How long after a nudge the read may come (default: at once); a read for an own append comes first. */
  nudgeWaitMs?: () => number;
  /** The nudge stream of a stream read here (same slot), if it has one. */
  nudgeOf?: (key: string) => string | undefined;
  log?: Logger;
}

/** Entries per stream per XREAD: bounds one read's memory; a full read is followed at once. */
const READ_COUNT = 1000;
/** Nudges per stream per wait: all that came since the last wait, so old ones wake no second read. */
const NUDGE_READ_COUNT = 100;
/**
 * The pace after a read for an own append, per ms of pace: the next tick's append asks again a
 * pace later, and must come first, or a read on the pace would split the other workers' entries
 * from this worker's into two frames. Entries nobody here appends wait this much longer.
 */
const PACE_AFTER_OWED = 1.25;

export class StreamReader {
  private readonly cursors = new Map<string, string>();
  /** Nudge stream → the last id seen ('$' until one was). */
  private readonly nudges = new Map<string, string>();
  /** Nudge stream → the stream it nudges for. */
  private readonly nudgedStream = new Map<string, string>();
  private closed = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  /** Bumped by every change of the key set; a read in flight with an older one is stale. */
  private generation = 0;
  private inFlight: number | undefined;
  private clientId: number | undefined;
  private connectedBefore = false;
  /** Blocked on the nudge streams (the pace's wait), which only CLIENT UNBLOCK breaks. */
  private waitingOnNudges = false;

  constructor(private readonly o: StreamReaderOptions) {
    o.conn.on('ready', () => {
      this.clientId = undefined;
      if (this.connectedBefore) o.onResumed();
      this.connectedBefore = true;
      this.wake?.();
    });
  }

  get conn(): Client {
    return this.o.conn;
  }

  /** Resolves once the connection is ready; rejects after `timeoutMs`. */
  ready(timeoutMs = 5000): Promise<void> {
    const conn = this.o.conn;
    if (conn.status === 'ready') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        conn.off('ready', ok);
        reject(new Error('redis bus reader did not connect'));
      }, timeoutMs);
      function ok(): void {
        clearTimeout(timer);
        resolve();
      }
      conn.once('ready', ok);
    });
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Reads `key` from after `fromId` on (a key already read keeps its own cursor). */
  add(key: string, fromId: string): void {
    if (this.cursors.has(key)) return;
    this.cursors.set(key, fromId);
    const nudge = this.o.nudgeOf?.(key);
    if (nudge !== undefined) {
      this.nudges.set(nudge, '$');
      this.nudgedStream.set(nudge, key);
    }
    this.changed();
  }

  remove(key: string): void {
    if (!this.cursors.delete(key)) return;
    this.generation++;
    const nudge = this.o.nudgeOf?.(key);
    if (nudge !== undefined) {
      this.nudges.delete(nudge);
      this.nudgedStream.delete(nudge);
    }
  }

  /**
   * Ends the pace's wait: an own append is owed. Breaking a wait on the nudge streams needs
   * `unblock`; without it the wait runs out first.
   */
  readSoon(): void {
    if (this.closed) return;
    this.wake?.();
    if (this.waitingOnNudges && this.clientId !== undefined) void this.o.unblock?.(this.clientId).catch(() => false);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    await this.loop;
  }

  private changed(): void {
    this.generation++;
    this.wake?.();
    void this.interrupt();
  }

  /** A blocked read over the old key set would hold a new key back for up to blockMs. */
  private async interrupt(): Promise<void> {
    const unblock = this.o.unblock;
    if (!unblock) return;
    // CLIENT UNBLOCK travels on another connection and may overtake the XREAD: retry briefly.
    for (let i = 0; i < 20 && this.inFlight !== undefined && this.inFlight < this.generation; i++) {
      const id = this.clientId;
      if (id !== undefined && (await unblock(id).catch(() => false))) return;
      await sleep(5);
    }
  }

  private async run(): Promise<void> {
    const conn = this.o.conn;
    let failures = 0;
    let nextAt = 0;
    while (!this.closed) {
      if (conn.status !== 'ready' || this.cursors.size === 0) {
        await this.idle(1000);
        continue;
      }
      const owed = this.o.owed?.() ?? false;
      const wait = owed ? 0 : nextAt - performance.now();
      if (wait > 0) {
        if (await this.waitForNudge(wait)) nextAt = Math.min(nextAt, performance.now() + (this.o.nudgeWaitMs?.() ?? 0));
        continue;
      }
      const keys = [...this.cursors.keys()];
      const ids = keys.map((k) => this.cursors.get(k)!);
      const started = performance.now();
      let reply: Array<[Buffer, StreamItem[]]> | null;
      try {
        if (this.o.unblock && this.clientId === undefined) this.clientId = Number(await conn.client('ID'));
        this.inFlight = this.generation;
        reply = (await conn.xreadBuffer('COUNT', READ_COUNT, 'BLOCK', this.o.blockMs, 'STREAMS', ...keys, ...ids)) as Array<[Buffer, StreamItem[]]> | null;
        failures = 0;
      } catch (err) {
        this.inFlight = undefined;
        if (this.closed) break;
        this.o.onError(err);
        await this.idle(backoffMs(failures++, { baseMs: 25, maxMs: 2000 }));
        continue;
      }
      this.inFlight = undefined;
      if (!reply) continue; // timed out or unblocked: read again at once
      let full = false;
      for (const [keyBuf, items] of reply) {
        const key = keyBuf.toString();
        const last = items[items.length - 1];
        if (!last || !this.cursors.has(key)) continue;
        this.cursors.set(key, last[0].toString());
        if (items.length >= READ_COUNT) full = true;
        this.o.onItems(key, items);
      }
      this.o.onReadDone();
      nextAt = full ? 0 : started + this.o.paceMs() * (owed ? PACE_AFTER_OWED : 1);
    }
  }

  /**
   * The pace's wait: blocked on the nudge streams for `ms`; true when one got an entry (an
   * urgent append to a stream read here) that was not read yet, so the next read starts at once.
   * A nudge for an entry already read (this worker's own, read back at once; another's, read
   * before its nudge came) ends the wait early but keeps the pace: else the next read would
   * block for whatever comes next and publish it alone.
   */
  private async waitForNudge(ms: number): Promise<boolean> {
    const conn = this.o.conn;
    if (this.nudges.size === 0 || ms < 1) {
      await this.idle(ms);
      return false;
    }
    const keys = [...this.nudges.keys()];
    const ids = keys.map((k) => this.nudges.get(k)!);
    let reply: Array<[Buffer, StreamItem[]]> | null;
    this.waitingOnNudges = true;
    try {
      reply = (await conn.xreadBuffer('COUNT', NUDGE_READ_COUNT, 'BLOCK', Math.ceil(ms), 'STREAMS', ...keys, ...ids)) as Array<[Buffer, StreamItem[]]> | null;
    } catch {
      // Closed, or trouble the next paced read meets too and reports; this wait ends on time.
      if (!this.closed) await this.idle(ms);
      return false;
    } finally {
      this.waitingOnNudges = false;
    }
    if (!reply) return false;
    let unread = false;
    for (const [keyBuf, items] of reply) {
      const key = keyBuf.toString();
      const last = items[items.length - 1];
      if (last && this.nudges.has(key)) this.nudges.set(key, last[0].toString());
      const cursor = this.cursors.get(this.nudgedStream.get(key) ?? '');
      // Fields: r, <room>, i, <the entry's id in the partition stream> (none from older nodes).
      for (const [, fields] of items) unread ||= cursor === undefined || !(fields[3] && idAtMost(fields[3].toString(), cursor));
    }
    return unread;
  }

  /** Waits `ms`, or until a key is added, the connection is ready, or close(). */
  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done(): void {
        clearTimeout(timer);
        if (self.wake === done) self.wake = undefined;
        resolve();
      }
      this.wake = done;
    });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Stream ids compare as (ms, seq) number pairs. */
function idAtMost(id: string, cursor: string): boolean {
  const [ms, seq] = id.split('-').map(Number) as [number, number];
  const [cms, cseq] = cursor.split('-').map(Number) as [number, number];
  return ms < cms || (ms === cms && seq <= cseq);
}
