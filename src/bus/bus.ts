// The one seam between workers and nodes, in four parts that each own one thing (as centrifuge
// splits Broker from PresenceManager): the room log, the live feed, presence counts and the
// control channel. Implementations: MemoryBus (one process) and RedisStreamsBus (clusters);
// both pass test/bus-contract.ts.
import type { Msg } from '../protocol/ops.js';

/** What a tick appends for one room: the messages that passed the budget and the likes sum. */
export interface EntryBody {
  msgs: Msg[];
  likes: number;
  /** Append time (ms), for read-lag measurement. */
  ts: number;
}

/**
 * An entry as it travels (bus, delivery, replay): its messages MessagePack-encoded once by
 * the worker that appends it (bus/entry.ts), so every worker builds its `batch` frames from
 * these bytes without decoding or re-encoding a message.
 */
export interface PackedBody {
  /** The messages as one MessagePack array (header and items). */
  packed: Uint8Array;
  /** Messages in `packed`. */
  count: number;
  /** `t` of the entry's oldest message (0 when it has none): delivery latency without decoding. */
  oldest: number;
  likes: number;
  /** Append time (ms), for read-lag measurement. */
  ts: number;
}

export interface LogEntry extends PackedBody {
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
  /** A read from the bus handed over everything it had (after its onEntries calls). */
  onReadDone?(): void;
  onControl(cmd: ControlCommand): void;
  /** A followed room's log was lost and restarted under a new epoch (entries follow from seq 1). */
  onEpoch?(room: string, epoch: string): void;
  /** Availability changed (e.g. Redis connection lost / back). */
  onAvailability?(available: boolean): void;
}

export interface AppendItem {
  room: string;
  entry: PackedBody;
  /**
   * Holds a high-priority message (system, gift, priority "high"): other workers read it at
   * once rather than on their next paced read (the Redis bus nudges their readers).
   */
  urgent?: boolean;
}

/** Each room's ordered log: the truth for seq, epoch and recovery. */
export interface RoomLog {
  /** Appends one entry per item in one round trip; each result is the new head or an Error. */
  append(items: readonly AppendItem[]): Promise<Array<RoomHead | Error>>;
  /** Entries after `afterSeq` for recovery. */
  range(room: string, afterSeq: number, limit: number): Promise<RangeResult>;
  head(room: string): Promise<RoomHead>;
}

/** Live delivery of followed rooms' new entries to BusHandler.onEntries. */
export interface LiveFeed {
  /** Starts delivering the room's new entries; resolves with the head at that point. */
  follow(room: string): Promise<RoomHead>;
  unfollow(room: string): void;
}

/** Cluster-wide approximate member counts. */
export interface Presence {
  /** This worker's member count per room (a heartbeat; absent rooms count zero). */
  reportMembers(counts: ReadonlyMap<string, number>): void;
  members(room: string): number;
  /** Largest rooms cluster-wide. */
  topRooms(n: number): Array<[string, number]>;
  /** This worker's name among the count writers (what forgetWorkers takes). */
  readonly presenceId: string;
  /**
   * Workers known dead (their process exited): their counts stop now, not when their counts'
   * TTL lapses, which is long so that a starved live worker keeps counting. Never rejects: a
   * failure is reported as a heartbeat error, and the TTL still covers it.
   */
  forgetWorkers(ids: readonly string[]): Promise<void>;
}

/** Moderation commands, seen by every worker in one order. */
export interface ControlChannel {
  /** Sends a command to every worker, this one included. */
  control(cmd: ControlCommand): Promise<void>;
}

/** One explicit lifecycle state (as ioredis' `status`), not several flags. */
export type BusStatus = 'connecting' | 'ready' | 'reconnecting' | 'closed';
export const BUS_STATUSES: readonly BusStatus[] = ['connecting', 'ready', 'reconnecting', 'closed'];

export type BusOp = 'append' | 'read' | 'heartbeat' | 'control' | 'range';
export const BUS_OPS: readonly BusOp[] = ['append', 'read', 'heartbeat', 'control', 'range'];

/** What a bus reports for metrics (injected, so the bus never imports the metrics module). */
export interface BusEvents {
  error(op: BusOp): void;
  reconnect(): void;
  /** A read re-established after an error or reconnect (its followed rooms re-checked). */
  resubscribe(): void;
  /** Entries fetched from a room's own log to fill a gap in the live feed. */
  gapFill(entries: number): void;
  status(s: BusStatus): void;
}

export interface Bus extends RoomLog, LiveFeed, Presence, ControlChannel {
  readonly kind: 'memory' | 'redis';
  /**
   * The entries this worker appends to a followed room come back through onEntries and
   * onReadDone right after the append resolves (the bus reads at once after it): the pipeline
   * publishes them with that read, in one frame with other workers' entries, not in their own.
   */
  readonly readsBack: boolean;
  start(handler: BusHandler): Promise<void>;
  status(): BusStatus;
  /** status() === 'ready': sends and API posts are refused otherwise. */
  available(): boolean;
  close(): Promise<void>;
}
