// A timer wheel for per-connection deadlines (token expiry hints and closes). One timer per
// worker walks the slots that came due since the last walk, so the cost per walk is the
// number of deadlines that fell due, never the number of connections (no timer per socket).

/** Up to this many pending slots, the next due one is found by a scan; beyond, every slot is walked. */
const SCAN_LIMIT = 1024;
/** A slot's list is compacted once it holds more than twice its live items plus this. */
const COMPACT_SLACK = 16;

/**
 * One slot's items: a list, not a Set (a Set's table held ~40 bytes per connection, the list
 * 8–12). A deleted item stays in the list until the slot is walked or compacted: an entry
 * counts only while the item's slot number is this slot's.
 */
interface Slot<T> {
  items: T[];
  live: number;
}

/** Where an item keeps its slot number: on the item itself, not in a map of the wheel's. */
export interface SlotAccess<T> {
  get(item: T): number | undefined;
  set(item: T, slot: number | undefined): void;
}

export class Deadlines<T> {
  /**
   * Slot numbers count from the wheel's start: small integers stay unboxed in the maps, where
   * slots since the epoch (~7e9) would each take a 16-byte heap number, one per connection.
   */
  private readonly origin: number;
  /** slot number -> items due in it */
  private readonly slots = new Map<number, Slot<T>>();
  private pending = 0;
  /** The last slot walked. */
  private walked = 0;

  constructor(
    private readonly slotMs: number,
    now: number,
    private readonly slotOf: SlotAccess<T>,
  ) {
    this.origin = Math.floor(now / slotMs);
  }

  /** (Re)schedules `item` for `dueMs`; it fires on the first walk at or after that time. */
  set(item: T, dueMs: number): void {
    // A deadline already passed fires on the next walk.
    const slot = this.slotTime(dueMs) / this.slotMs - this.origin;
    if (this.slotOf.get(item) === slot) return;
    this.delete(item);
    let s = this.slots.get(slot);
    if (!s) this.slots.set(slot, (s = { items: [], live: 0 }));
    s.items.push(item);
    s.live++;
    this.slotOf.set(item, slot);
    this.pending++;
  }

  delete(item: T): void {
    const slot = this.slotOf.get(item);
    if (slot === undefined) return;
    this.slotOf.set(item, undefined);
    this.pending--;
    const s = this.slots.get(slot);
    if (!s) return;
    if (--s.live === 0) this.slots.delete(slot);
    else if (s.items.length > 2 * s.live + COMPACT_SLACK) this.compact(slot, s);
  }

  /** Keeps the slot's live items, once each (an item deleted and set again is in the list twice). */
  private compact(slot: number, s: Slot<T>): void {
    const kept = new Set<T>();
    for (const item of s.items) if (this.slotOf.get(item) === slot) kept.add(item);
    s.items = [...kept];
  }

  /** Removes and returns the items whose slot is due at `now`. */
  due(now: number): T[] {
    const upTo = Math.floor(now / this.slotMs) - this.origin;
    const out: T[] = [];
    // Walks slot by slot while that is cheaper than looking at every pending slot.
    if (upTo - this.walked <= this.slots.size) {
      for (let s = this.walked + 1; s <= upTo; s++) this.take(s, out);
    } else {
      for (const s of [...this.slots.keys()]) if (s <= upTo) this.take(s, out);
    }
    this.walked = Math.max(this.walked, upTo);
    return out;
  }

  get size(): number {
    return this.pending;
  }

  /**
   * When a walk next has something to do (undefined: nothing pending). With many pending
   * slots the next slot's time, as a walk every slot would: the walks are due that often anyway.
   */
  nextDueMs(): number | undefined {
    if (this.slots.size === 0) return undefined;
    if (this.slots.size > SCAN_LIMIT) return (this.origin + this.walked + 1) * this.slotMs;
    let min = Infinity;
    for (const s of this.slots.keys()) if (s < min) min = s;
    return (this.origin + min) * this.slotMs;
  }

  /** The time of the slot `dueMs` falls in (when set() makes it fire). */
  slotTime(dueMs: number): number {
    return Math.max(this.origin + this.walked + 1, Math.ceil(dueMs / this.slotMs)) * this.slotMs;
  }

  private take(slot: number, out: T[]): void {
    const s = this.slots.get(slot);
    if (!s) return;
    this.slots.delete(slot);
    for (const item of s.items) {
      if (this.slotOf.get(item) !== slot) continue; // deleted, or already taken (listed twice)
      this.slotOf.set(item, undefined);
      this.pending--;
      out.push(item);
    }
  }
}
