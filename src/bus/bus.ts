// The one seam between workers and nodes. Implementations: MemoryBus (one process) and,
// for clusters, a Redis streams bus. Both pass test/bus-contract.ts.
import type { Msg } from '../protocol/ops.js';

/** What a tick appends for one room: the messages that passed the budget and the likes sum. */
export interface EntryBody {
  msgs: Msg[];
  likes: number;
  /** Append time (ms), for read-lag measurement. */
  ts: number;
}

export interface LogEntry extends EntryBody {
  seq: number;
}

export interface RoomHead {
  epoch: string;
  /** Last seq in the room's log (0 for an empty log). */
  seq: number;
}

export interface RangeResult {
  epoch: string;
  /** Entries with seq > afterSeq, oldest first, at most `limit`. */
  entries: LogEntry[];
  /** Oldest seq still held; recovery is complete only if afterSeq + 1 >= oldest. */
  oldest: number;
  head: number;
}

export type ControlCommand =
  | { type: 'kick'; room: string; uid: string; reason?: string; untilMs: number }
  | { type: 'mute'; room: string; uid?: string; untilMs: number }
  | { type: 'disconnect'; uid: string; reason?: string; untilMs: number };

/** Callbacks a bus makes into its worker (dependencies point inward). */
export interface BusHandler {
  /** New entries of a followed room, in seq order. */
  onEntries(room: string, epoch: string, entries: LogEntry[]): void;
  onControl(cmd: ControlCommand): void;
  /** A followed room's log was lost and restarted under a new epoch (entries follow from seq 1). */
  onEpoch?(room: string, epoch: string): void;
  /** Availability changed (e.g. Redis connection lost / back). */
  onAvailability?(available: boolean): void;
}

export interface AppendItem {
  room: string;
  entry: EntryBody;
}

export interface Bus {
  readonly kind: 'memory' | 'redis';
  start(handler: BusHandler): Promise<void>;
  /** Appends one entry per room in one round trip; each result is the new head or an Error. */
  append(items: readonly AppendItem[]): Promise<Array<RoomHead | Error>>;
  /** Starts delivering the room's new entries to onEntries; resolves with the head at that point. */
  follow(room: string): Promise<RoomHead>;
  unfollow(room: string): void;
  /** Entries after `afterSeq` for recovery. */
  range(room: string, afterSeq: number, limit: number): Promise<RangeResult>;
  head(room: string): Promise<RoomHead>;
  /** This worker's member count per room (a heartbeat; absent rooms count zero). */
  reportMembers(counts: ReadonlyMap<string, number>): void;
  /** Cluster-wide approximate member count. */
  members(room: string): number;
  /** Largest rooms cluster-wide. */
  topRooms(n: number): Array<[string, number]>;
  /** Sends a moderation command to every worker, this one included. */
  control(cmd: ControlCommand): Promise<void>;
  available(): boolean;
  close(): Promise<void>;
}
