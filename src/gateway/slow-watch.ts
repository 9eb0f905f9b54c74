// Drop candidates for publish's skip count: sockets seen with a send backlog within
// SLOW_WATCH_MS. Finding them takes a look at every socket's buffer, but a backlog only grows
// through a write: a sweep after a second without writes looks at the known candidates
// alone, so an idle worker's sweep costs nothing per member.
export interface Buffered {
  bufferedAmount(): number;
}

/** A socket that had a backlog stays a drop candidate this long: slow clients stay slow. */
export const SLOW_WATCH_MS = 10_000;

export class SlowWatch<S extends Buffered> {
  private readonly slow = new Map<S, number>();
  private wrote = false;

  /** Something was written (a publish, replies) since the last sweep. */
  noteWrite(): void {
    this.wrote = true;
  }

  /** The socket has a backlog now (a drain event says so). */
  seen(s: S, now: number): void {
    this.slow.set(s, now);
  }

  forget(s: S): void {
    this.slow.delete(s);
  }

  candidates(): IterableIterator<S> {
    return this.slow.keys();
  }

  /** A sweep has something to do: a write since the last one, or candidates to watch. */
  get busy(): boolean {
    return this.wrote || this.slow.size > 0;
  }

  /** Notes every socket with a backlog; returns how many sockets were looked at. */
  sweep(all: Iterable<S> & { size: number }, now: number): number {
    const scan: Iterable<S> = this.wrote ? all : [...this.slow.keys()];
    const looked = this.wrote ? all.size : this.slow.size;
    this.wrote = false;
    for (const s of scan) if (s.bufferedAmount() > 0) this.slow.set(s, now);
    for (const [s, at] of this.slow) if (now - at > SLOW_WATCH_MS) this.slow.delete(s);
    return looked;
  }
}
