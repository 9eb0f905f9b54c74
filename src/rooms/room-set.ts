// The rooms one connection is in. Nearly every member is in one room, so that room is a field
// and a Set exists only while the connection is in two or more: an empty Set and its hash
// table cost ~230 bytes per connection, this object 40.

export class RoomSet implements ReadonlySet<string> {
  /** The room while there is at most one. */
  private one: string | undefined;
  /** Every room while there are two or more. */
  private many: Set<string> | undefined;

  get size(): number {
    return this.many !== undefined ? this.many.size : this.one === undefined ? 0 : 1;
  }

  has(room: string): boolean {
    return this.many !== undefined ? this.many.has(room) : this.one === room;
  }

  add(room: string): this {
    if (this.many !== undefined) this.many.add(room);
    else if (this.one === undefined) this.one = room;
    else if (this.one !== room) {
      this.many = new Set([this.one, room]);
      this.one = undefined;
    }
    return this;
  }

  /** Returns whether `room` was in the set. Back to one field when one room is left. */
  delete(room: string): boolean {
    const many = this.many;
    if (many === undefined) {
      if (this.one !== room) return false;
      this.one = undefined;
      return true;
    }
    if (!many.delete(room)) return false;
    if (many.size === 1) {
      this.one = many.values().next().value;
      this.many = undefined;
    }
    return true;
  }

  *values(): SetIterator<string> {
    if (this.many !== undefined) yield* this.many;
    else if (this.one !== undefined) yield this.one;
  }

  keys(): SetIterator<string> {
    return this.values();
  }

  *entries(): SetIterator<[string, string]> {
    for (const room of this.values()) yield [room, room];
  }

  [Symbol.iterator](): SetIterator<string> {
    return this.values();
  }

  forEach(fn: (room: string, room2: string, set: ReadonlySet<string>) => void, thisArg?: unknown): void {
    for (const room of this.values()) fn.call(thisArg, room, room, this);
  }
}
