// Per-room message counts and delivery lag for the hot-room row of the dashboard. Only the
// rooms that have a room_members series (the top `metricsTopRooms` by members) get series
// here too, so label cardinality stays bounded however many rooms exist.
import { Counter, Gauge, type Registry } from 'prom-client';

/** accepted (logged), sampled_out (over the room budget), refused (any other refusal), delivered (published to local members). */
export const ROOM_RESULTS = ['accepted', 'sampled_out', 'refused', 'delivered'] as const;
export type RoomResult = (typeof ROOM_RESULTS)[number];

export class RoomStats {
  private tracked = new Set<string>();
  /** Worst accepted → published delay per room since the last scrape (seconds). */
  private worst = new Map<string, number>();
  private readonly messages: Counter<'room' | 'result'>;
  private readonly lag: Gauge<'room'>;

  constructor(registry: Registry, prefix: string) {
    const registers = [registry];
    this.messages = new Counter({
      name: prefix + 'room_messages_total',
      help: 'messages of the top rooms by result (accepted, sampled_out, refused, delivered)',
      labelNames: ['room', 'result'],
      registers,
    });
    const worst = this.worst;
    const tracked = this.tracked;
    this.lag = new Gauge({
      name: prefix + 'room_delivery_lag_seconds',
      help: 'worst accepted -> handed to the sockets delay in each top room since the last scrape',
      labelNames: ['room'],
      registers,
      collect() {
        for (const room of tracked) this.set({ room }, worst.get(room) ?? 0);
        worst.clear();
      },
    });
  }

  /** The rooms that get series from now on; the others' series are removed. */
  track(rooms: readonly string[]): void {
    const next = new Set(rooms);
    for (const room of this.tracked) {
      if (next.has(room)) continue;
      for (const result of ROOM_RESULTS) this.messages.remove({ room, result });
      this.lag.remove({ room });
      this.worst.delete(room);
      this.tracked.delete(room);
    }
    for (const room of next) {
      if (this.tracked.has(room)) continue;
      this.tracked.add(room);
      for (const result of ROOM_RESULTS) this.messages.inc({ room, result }, 0);
      this.lag.set({ room }, 0);
    }
  }

  count(room: string, result: RoomResult, n = 1): void {
    if (n > 0 && this.tracked.has(room)) this.messages.inc({ room, result }, n);
  }

  /** A batch of `msgs` messages published to the room's members, the oldest accepted `lagSec` ago. */
  delivered(room: string, msgs: number, lagSec: number): void {
    if (!this.tracked.has(room)) return;
    if (msgs > 0) this.messages.inc({ room, result: 'delivered' }, msgs);
    if (lagSec > (this.worst.get(room) ?? 0)) this.worst.set(room, lagSec);
  }
}
