// Local membership: which connections are in which room, and who is who, on this worker.
import type { Connection } from './connection.js';

/** Told of every member entering or leaving a room (business events). */
export interface MembershipObserver {
  joined(room: string, uid: string): void;
  left(room: string, uid: string): void;
}

export class Membership {
  private readonly byRoom = new Map<string, Set<Connection>>();
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
    c.rooms.add(room);
    let set = this.byRoom.get(room);
    const first = !set;
    if (!set) this.byRoom.set(room, (set = new Set()));
    if (!set.has(c)) this.observer?.joined(room, c.creds.uid);
    set.add(c);
    return first;
  }

  /** Returns true when the room has no local member left. */
  leave(c: Connection, room: string): boolean {
    c.rooms.delete(room);
    const set = this.byRoom.get(room);
    if (!set?.delete(c)) return false;
    this.observer?.left(room, c.creds.uid);
    if (set.size > 0) return false;
    this.byRoom.delete(room);
    return true;
  }

  has(room: string): boolean {
    return this.byRoom.has(room);
  }

  membersOf(room: string): ReadonlySet<Connection> {
    return this.byRoom.get(room) ?? new Set();
  }

  connectionsOf(uid: string): readonly Connection[] {
    const had = this.byUid.get(uid);
    return had === undefined ? [] : had instanceof Set ? [...had] : [had];
  }

  counts(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [room, set] of this.byRoom) out.set(room, set.size);
    return out;
  }

  get roomCount(): number {
    return this.byRoom.size;
  }

  get connectionCount(): number {
    return this.connections;
  }
}
