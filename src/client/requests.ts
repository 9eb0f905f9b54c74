// The request table: refs handed out on the current connection and what waits for each
// reply (a join, a leave, an app request, a heartbeat ping), with their timeouts.
import type { Clock, TimerHandle } from './clock.js';
import type { RoomcastError } from './errors.js';
import type { Frame } from './types.js';

export type Pending =
  | { kind: 'join'; room: string }
  | { kind: 'leave'; resolve: () => void; timer: TimerHandle }
  | { kind: 'request'; resolve: (f: Frame) => void; reject: (e: RoomcastError) => void; timer: TimerHandle; room?: string }
  | { kind: 'heartbeat' };

export class RequestTable {
  private seq = 0;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly clock: Clock) {}

  nextRef(): number {
    this.seq = (this.seq + 1) % 0x7fffffff || 1;
    return this.seq;
  }

  set(ref: number, p: Pending): void {
    this.pending.set(ref, p);
  }

  delete(ref: number): void {
    this.pending.delete(ref);
  }

  /** Removes the entry for `ref` and clears its timer; returns it. */
  take(ref: number): Pending | undefined {
    const p = this.pending.get(ref);
    if (!p) return undefined;
    this.pending.delete(ref);
    if (p.kind === 'request' || p.kind === 'leave') this.clock.clearTimeout(p.timer);
    return p;
  }

  /** Settles `ref` with its reply frame: a request resolves with it, a leave resolves. */
  resolve(ref: number, f: Frame): void {
    const p = this.take(ref);
    if (p?.kind === 'request') p.resolve(f);
    else if (p?.kind === 'leave') p.resolve();
  }

  /** Ends everything in flight: requests reject with `error(room)`, leaves resolve (the connection is gone). */
  failAll(error: (room?: string) => RoomcastError): void {
    for (const ref of [...this.pending.keys()]) {
      const p = this.take(ref);
      if (p?.kind === 'request') p.reject(error(p.room));
      else if (p?.kind === 'leave') p.resolve();
    }
  }
}
