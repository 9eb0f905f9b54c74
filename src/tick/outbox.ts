// Per-room outboxes filled by ingress between ticks. Nothing here is sent; the tick drains
// them. Likes are kept only as a counter plus the replies owed to senders that asked for one
// (a like sent without `ref` is not acked).
import type { Msg } from '../protocol/ops.js';
import type { WireError } from '../protocol/errors.js';

export type Outcome = { shown: true; seq: number } | { shown: false } | { error: WireError };

/** A message waiting for the next tick, with the reply its sender is owed. */
export interface Pending {
  msg: Msg;
  reply: (o: Outcome) => void;
  /** Client chat goes through content review; API messages are trusted. */
  review?: boolean;
}

export interface RoomOutbox {
  /** system, gift and priority:"high": never dropped, delivered first. */
  high: Pending[];
  /** chat and normal-priority custom kinds: subject to the room's budget. */
  normal: Pending[];
  likes: number;
  likeReplies: Array<(o: Outcome) => void>;
}

export class Outboxes {
  private rooms = new Map<string, RoomOutbox>();

  /**
   * onQueued: told of every message queued, so a sleeping ticker wakes up for it; `urgent`
   * for high-priority ones, which must not wait for a stretched tick.
   */
  constructor(private readonly onQueued: (urgent: boolean) => void = () => {}) {}

  private of(room: string, urgent = false): RoomOutbox {
    this.onQueued(urgent);
    let o = this.rooms.get(room);
    if (!o) this.rooms.set(room, (o = { high: [], normal: [], likes: 0, likeReplies: [] }));
    return o;
  }

  addHigh(room: string, p: Pending): void {
    const o = this.of(room, true);
    // system before gift before other high-priority kinds; arrival order within a kind.
    const rank = priorityRank(p.msg.k);
    let i = o.high.length;
    while (i > 0 && priorityRank(o.high[i - 1]!.msg.k) > rank) i--;
    o.high.splice(i, 0, p);
  }

  addNormal(room: string, p: Pending): void {
    this.of(room).normal.push(p);
  }

  addLike(room: string, count = 1, reply?: (o: Outcome) => void): void {
    const o = this.of(room);
    o.likes += count;
    if (reply) o.likeReplies.push(reply);
  }

  /** Hands over everything queued so far and starts empty outboxes for the next tick. */
  take(): Map<string, RoomOutbox> {
    const taken = this.rooms;
    this.rooms = new Map();
    return taken;
  }

  get size(): number {
    return this.rooms.size;
  }
}

function priorityRank(kind: string): number {
  return kind === 'system' ? 0 : kind === 'gift' ? 1 : 2;
}
