// The gateway's open sockets, linked through the sockets' own fields: a Set of 17k sockets
// holds ~40 bytes per socket (its table doubles ahead of the size), two fields hold 16.

export interface Linked<T> {
  prev: T | undefined;
  next: T | undefined;
}

export class SocketList<T extends Linked<T>> implements Iterable<T> {
  private head: T | undefined;
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(s: T): void {
    s.prev = undefined;
    s.next = this.head;
    if (this.head) this.head.prev = s;
    this.head = s;
    this.count++;
  }

  /** Unlinks `s`; a socket not in the list is left alone. */
  delete(s: T): void {
    if (s.prev) s.prev.next = s.next;
    else if (this.head === s) this.head = s.next;
    else return;
    if (s.next) s.next.prev = s.prev;
    s.prev = s.next = undefined;
    this.count--;
  }

  /** In order from the newest; a socket deleted while it is the current one does not end the walk. */
  *[Symbol.iterator](): Iterator<T> {
    for (let s = this.head; s !== undefined; ) {
      const next = s.next;
      yield s;
      s = next;
    }
  }
}
