// The Redis key layout. Every room hashes to one of S partitions; a room's keys carry its
// partition's hash tag, so the room's log, its meta and its partition stream share one Cluster
// slot and one script writes them atomically. Keys that are not per room are touched per
// control command or per heartbeat, never per message, so none becomes a hot slot.
//
//   <p>:{p<n>}:m:<room>   hash  s=<last seq> e=<epoch>            PEXPIRE historyTtl (each append)
//   <p>:{p<n>}:l:<room>   stream of the room's log, id <seq>-1,   PEXPIRE historyTtl (each append)
//                         fields d=<stored entry body, bus/entry.ts> e=<epoch>, MAXLEN ~ history
//   <p>:{p<n>}:s          partition stream: r=<room> s=<seq> e=<epoch> d=<body>, MAXLEN ~ PART_MAXLEN,
//                         PEXPIRE historyTtl (each append)
//   <p>:{p<n>}:u          partition nudge stream: r=<room>, i=<its partition stream id>, one entry per urgent append, MAXLEN ~ NUDGE_MAXLEN,
//                         PEXPIRE historyTtl (each urgent append); paced readers block on it between reads
//   <p>:control           moderation commands, MAXLEN ~ CONTROL_MAXLEN, PEXPIRE historyTtl (each command)
//   <p>:members:{<id>}    hash room → count of one worker, PEXPIRE 30 × heartbeat (presence.ts TTL_BEATS);
//                         deleted by a clean stop, or by a sibling told of the worker's death
//   <p>:beats             hash worker id → "<version>|<writes>", a mark each heartbeat moves, PEXPIRE 60 × heartbeat
//   <p>:partitions        S, set once; a node configured with another S refuses to start (no TTL: one key)

/** Entries kept per partition stream: the live feed's slack; a reader further behind fills from room logs. */
export const PART_MAXLEN = 2000;
export const CONTROL_MAXLEN = 1000;
/** Entries kept per nudge stream: a reader only needs to see that one came. */
export const NUDGE_MAXLEN = 100;

export class Keys {
  readonly control: string;
  readonly beats: string;
  readonly partitions: string;

  constructor(
    readonly prefix: string,
    readonly partitionCount: number,
  ) {
    this.control = `${prefix}:control`;
    this.beats = `${prefix}:beats`;
    this.partitions = `${prefix}:partitions`;
  }

  /** FNV-1a of the room id, mod S: every node places a room in the same partition. */
  partitionOf(room: string): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < room.length; i++) {
      h ^= room.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    return (h >>> 0) % this.partitionCount;
  }

  meta(room: string): string {
    return `${this.prefix}:{p${this.partitionOf(room)}}:m:${room}`;
  }

  log(room: string): string {
    return `${this.prefix}:{p${this.partitionOf(room)}}:l:${room}`;
  }

  stream(partition: number): string {
    return `${this.prefix}:{p${partition}}:s`;
  }

  nudge(partition: number): string {
    return `${this.prefix}:{p${partition}}:u`;
  }

  /** The nudge stream beside a partition stream (same slot); undefined for other keys. */
  nudgeOf(streamKey: string): string | undefined {
    const head = `${this.prefix}:{p`;
    if (!streamKey.startsWith(head) || !streamKey.endsWith('}:s')) return undefined;
    return `${streamKey.slice(0, -1)}u`;
  }

  members(workerId: string): string {
    return `${this.prefix}:members:{${workerId}}`;
  }
}
