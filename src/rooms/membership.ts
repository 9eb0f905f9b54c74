// Local membership on this worker: how many connections each room has (a connection's own
// RoomSet says which rooms it is in), and which connections each user has.
import type { Connection } from './connection.js';

/** Told of every member entering or leaving a room (business events). */
export interface MembershipObserver {
  joined(room: string, uid: string): void;
  left(room: string, uid: string): void;
}

/** A room with local members: its name (one string shared by every member's RoomSet) and how many. */
interface LocalRoom {
  readonly name: string;
  members: number;
}

export class Membership {
  /** Counts only: a connection's rooms are in its RoomSet, so no per-room Set of members is kept. */
  private readonly byRoom = new Map<string, LocalRoom>();
  /** A user's connections: the connection itself while it is the only one (the common case). */
  private readonly byUid = new Map<string, Connection | Set<Connection>>();
  private connections = 0;

  constructor(private readonly observer?: MembershipObserver) {}

  addConnection(c: Connection): void {
    this.connections++;
    const had = this.byUid.get(c.creds.uid);
    if (had === undefined) this.byUid.set(c.creds.uid, c);
    else if (had instanceof Set) had.add(c);
    else if (had !== c) this.byUid.set(c.creds.uid, new Set([had, c]));
  }

  /** Removes the connection from its rooms; returns the rooms that now have no local member. */
  removeConnection(c: Connection): string[] {
    this.connections--;
    const had = this.byUid.get(c.creds.uid);
    if (had === c) this.byUid.delete(c.creds.uid);
    else if (had instanceof Set) {
      had.delete(c);
      if (had.size === 1) this.byUid.set(c.creds.uid, had.values().next().value!);
    }
    const emptied: string[] = [];
    for (const room of c.rooms) if (this.leave(c, room)) emptied.push(room);
    return emptied;
  }

  /** Returns true when this is the room's first local member. */
  join(c: Connection, room: string): boolean {
    let r = this.byRoom.get(room);
    const first = !r;
    if (!r) this.byRoom.set(room, (r = { name: room, members: 0 }));
    if (c.rooms.has(room)) return first;
    c.rooms.add(r.name);
    r.members++;
    this.observer?.joined(room, c.creds.uid);
    return first;
  }

  /** Returns true when the room has no local member left. */
  leave(c: Connection, room: string): boolean {
    if (!c.rooms.delete(room)) return false;
    const r = this.byRoom.get(room);
    this.observer?.left(room, c.creds.uid);
    if (!r || --r.members > 0) return false;
    this.byRoom.delete(room);
    return true;
  }

  has(room: string): boolean {
    return this.byRoom.has(room);
  }

  /** Local members of `room`. */
  count(room: string): number {
    return this.byRoom.get(room)?.members ?? 0;
  }

  /** The user's connections on this worker. */
  countOf(uid: string): number {
    const had = this.byUid.get(uid);
    return had === undefined ? 0 : had instanceof Set ? had.size : 1;
  }

  connectionsOf(uid: string): readonly Connection[] {
    const had = this.byUid.get(uid);
    return had === undefined ? [] : had instanceof Set ? [...had] : [had];
  }

  /** Every connection on this worker (the engine keeps no set of its own). */
  *all(): IterableIterator<Connection> {
    for (const had of this.byUid.values()) {
      if (had instanceof Set) yield* had;
      else yield had;
    }
  }

  counts(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [room, r] of this.byRoom) out.set(room, r.members);
    return out;
  }

  get roomCount(): number {
    return this.byRoom.size;
  }

  get connectionCount(): number {
    return this.connections;
  }
}
