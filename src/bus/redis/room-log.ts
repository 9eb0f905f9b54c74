// Each room's log on Redis: one script per append writes the room's log, its meta and its
// partition stream atomically (one round trip for the whole tick, auto-pipelined per node).
import { randomBytes } from 'node:crypto';
import type { Cluster } from 'ioredis';
import type { AppendItem, LogEntry, RangeResult, RoomHead, RoomLog } from '../bus.js';
import { loadBody, loadLegacyBody, storeBody } from '../entry.js';
import { Keys, NUDGE_MAXLEN, PART_MAXLEN } from './keys.js';
import type { Client } from './scripts.js';
import type { Patience } from './patience.js';

export interface RedisRoomLogOptions {
  history: number;
  historyTtlMs: number;
  /** Acks wait for this many replicas (Redis WAIT); 0 = Redis' asynchronous replication. */
  waitReplicas: number;
  waitTimeoutMs: number;
  /** Bounds each append's wait for its reply (adaptive; never resends). */
  patience: Patience;
  /** Bounds each head's and range's wait (patient: they are safe to wait out). */
  readPatience: Patience;
}

/** Absent optional fields stay absent (not nil → null) after a round trip. */
export const PACK = { ignoreUndefined: true } as const;

/** A head plus the partition stream's last id at that moment (where a new reader starts). */
export interface FollowHead extends RoomHead {
  streamId: string;
}

export class RedisRoomLog implements RoomLog {
  constructor(
    private readonly conn: Client,
    private readonly keys: Keys,
    private readonly o: RedisRoomLogOptions,
  ) {}

  async append(items: readonly AppendItem[]): Promise<Array<RoomHead | Error>> {
    if (items.length === 0) return [];
    const k = this.keys;
    const sent = items.map(({ room, entry, urgent }) => {
      const p = k.partitionOf(room);
      const call = this.conn.rcAppend(
        k.meta(room),
        k.log(room),
        k.stream(p),
        k.nudge(p),
        this.o.history,
        storeBody(entry),
        newEpoch(),
        this.o.historyTtlMs,
        PART_MAXLEN,
        room,
        urgent ? '1' : '0',
        NUDGE_MAXLEN,
      );
      return this.o.patience.bound(call).then(parseHead, asError);
    });
    const results = await Promise.all(sent);
    if (this.o.waitReplicas === 0) return results;
    // After the replies, so WAIT covers every script (auto-pipelining may reorder across nodes).
    const lag = await this.waitReplicas();
    if (lag === undefined) return results;
    return results.map((r) => (r instanceof Error ? r : lag));
  }

  /** undefined when every master's writes reached waitReplicas replicas, else the Error for the acks. */
  private async waitReplicas(): Promise<Error | undefined> {
    const n = this.o.waitReplicas;
    const masters = 'nodes' in this.conn && typeof this.conn.nodes === 'function' ? (this.conn as Cluster).nodes('master') : [this.conn];
    try {
      const counts = await Promise.all(masters.map((m) => m.wait(n, this.o.waitTimeoutMs)));
      const short = counts.find((c) => Number(c) < n);
      return short === undefined ? undefined : new Error(`redis bus: written to ${short} of ${n} replicas in time`);
    } catch (err) {
      return asError(err);
    }
  }

  async head(room: string): Promise<RoomHead> {
    const { epoch, seq } = await this.followHead(room);
    return { epoch, seq };
  }

  async followHead(room: string): Promise<FollowHead> {
    const k = this.keys;
    const v = await this.o.readPatience.bound(this.conn.rcHead(k.meta(room), k.stream(k.partitionOf(room)), newEpoch(), this.o.historyTtlMs));
    if (Array.isArray(v) && v.length === 3) {
      const [epoch, seq, id] = v as [unknown, unknown, unknown];
      if (typeof seq === 'number' && (typeof epoch === 'string' || Buffer.isBuffer(epoch)) && (typeof id === 'string' || Buffer.isBuffer(id))) {
        return { epoch: epoch.toString(), seq, streamId: id.toString() };
      }
    }
    throw new Error('redis bus: malformed head reply');
  }

  async range(room: string, afterSeq: number, limit: number): Promise<RangeResult> {
    const k = this.keys;
    const after = Math.max(0, Math.floor(afterSeq));
    const reply = await this.o.readPatience.bound(
      this.conn.rcRangeBuffer(k.meta(room), k.log(room), newEpoch(), this.o.historyTtlMs, after, Math.max(0, Math.floor(limit)), this.o.history),
    );
    if (!Array.isArray(reply) || reply.length !== 4) throw new Error('redis bus: malformed range reply');
    const [epochBuf, head, oldest, raw] = reply as [unknown, unknown, unknown, unknown];
    if (!Buffer.isBuffer(epochBuf) || typeof head !== 'number' || typeof oldest !== 'number' || !Array.isArray(raw)) {
      throw new Error('redis bus: malformed range reply');
    }
    const entries = (raw as Array<[Buffer, Buffer[]]>).map(([id, fields]) => toEntry(Number.parseInt(id.toString(), 10), field(fields, 'd')));
    return { epoch: epochBuf.toString(), entries, oldest, head };
  }
}

export function newEpoch(): string {
  return randomBytes(6).toString('hex');
}

/** A stored body as a LogEntry (its messages stay bytes); an unreadable one becomes an empty entry so seqs stay contiguous. */
export function toEntry(seq: number, raw: Buffer | undefined): LogEntry {
  const body = raw && (loadBody(raw) ?? loadLegacyBody(raw));
  return body ? { ...body, seq } : { ...EMPTY, seq };
}

const EMPTY = { packed: new Uint8Array([0x90]), count: 0, oldest: 0, likes: 0, ts: 0 };

export function field(fields: Buffer[], name: string): Buffer | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i]!.toString() === name) return fields[i + 1];
  return undefined;
}

function parseHead(v: unknown): RoomHead | Error {
  if (Array.isArray(v) && v.length === 2) {
    const [epoch, seq] = v as [unknown, unknown];
    if (typeof seq === 'number' && (typeof epoch === 'string' || Buffer.isBuffer(epoch))) return { epoch: epoch.toString(), seq };
  }
  return new Error('redis bus: malformed head reply');
}

export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
