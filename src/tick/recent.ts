// The last log entries of each followed room, kept as the pipeline delivers them, so a
// `join` with `last: N` is answered from memory: a whole audience entering at once costs no
// Redis read per joiner (at most one shared read per room, to fill in what came before the
// worker followed it).
import type { LogEntry, RoomHead } from '../bus/bus.js';
import { MAX_LAST } from '../protocol/ops.js';

interface Tail {
  epoch: string;
  /** Ascending seqs, at most MAX_LAST (plus a trim slack) and about TAIL_MAX_BYTES. */
  entries: LogEntry[];
  /** The log before the worker followed the room was read in (once per follow). */
  primed: boolean;
}

/** Trimmed in chunks, so the common add is a push. */
const TRIM_AT = MAX_LAST + MAX_LAST / 2;
/**
 * Encoded bytes a room's tail holds at most (its newest entry always stays): entries are
 * bytes, so a room of huge API messages must not keep MAX_LAST of them. A join then gets
 * fewer than `last`, as when the log holds fewer.
 */
const TAIL_MAX_BYTES = 1024 * 1024;

/** Drops the oldest entries over the byte bound. */
function trimBytes(entries: LogEntry[]): LogEntry[] {
  let bytes = 0;
  let keep = entries.length;
  while (keep > 0 && bytes + entries[keep - 1]!.packed.byteLength <= TAIL_MAX_BYTES) bytes += entries[--keep]!.packed.byteLength;
  const from = Math.min(keep, entries.length - 1);
  return from > 0 ? entries.slice(from) : entries;
}

export class RecentEntries {
  private readonly rooms = new Map<string, Tail>();

  /** Entries just delivered to the room's members (ascending; read copies already seen are skipped). */
  add(room: string, epoch: string, entries: readonly LogEntry[]): void {
    let t = this.rooms.get(room);
    // A new epoch restarts the log at seq 1: what this worker sees from then on is all of it.
    if (!t || t.epoch !== epoch) this.rooms.set(room, (t = { epoch, entries: [], primed: entries[0]?.seq === 1 }));
    const tailSeq = t.entries[t.entries.length - 1]?.seq ?? 0;
    for (const e of entries) if (e.seq > tailSeq) t.entries.push(e);
    if (t.entries.length > TRIM_AT) t.entries.splice(0, t.entries.length - MAX_LAST);
    t.entries = trimBytes(t.entries);
  }

  /** Whether serving `n` entries up to `upTo` needs the older log read in first. */
  needsPrime(room: string, upTo: RoomHead, n: number): boolean {
    const t = this.rooms.get(room);
    if (t?.primed && t.epoch === upTo.epoch) return false;
    const have = this.tail(room, upTo, n);
    return have.length < n && (have[0]?.seq ?? upTo.seq + 1) > 1;
  }

  /** The room's log as read from the bus (its newest entries), put before what was delivered since. */
  prime(room: string, epoch: string, entries: readonly LogEntry[]): void {
    const t = this.rooms.get(room);
    if (!t) return void this.rooms.set(room, { epoch, entries: trimBytes(entries.slice(-MAX_LAST)), primed: true });
    if (t.epoch !== epoch) return; // the log restarted meanwhile: what is delivered now is the whole log
    const first = t.entries[0]?.seq ?? Infinity;
    const last = t.entries[t.entries.length - 1]?.seq ?? 0;
    const older = entries.filter((e) => e.seq < first);
    const newer = t.entries.length === 0 ? [] : entries.filter((e) => e.seq > last);
    t.entries = trimBytes(older.concat(t.entries, newer).slice(-MAX_LAST));
    t.primed = true;
  }

  /**
   * The last `n` entries ending exactly at `upTo` (what the room's members have been sent), and
   * contiguous: fewer when the worker does not hold that many in one unbroken run.
   */
  tail(room: string, upTo: RoomHead, n: number): LogEntry[] {
    const t = this.rooms.get(room);
    if (!t || t.epoch !== upTo.epoch || n <= 0) return [];
    let end = t.entries.length;
    while (end > 0 && t.entries[end - 1]!.seq > upTo.seq) end--;
    if (end === 0 || t.entries[end - 1]!.seq !== upTo.seq) return [];
    let start = end - 1;
    while (start > 0 && end - start < n && t.entries[start - 1]!.seq === t.entries[start]!.seq - 1) start--;
    return t.entries.slice(start, end);
  }

  drop(room: string): void {
    this.rooms.delete(room);
  }
}
