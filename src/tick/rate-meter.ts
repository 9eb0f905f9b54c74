// Messages per second per room, as an exponentially decaying rate (for GET /v1/rooms/:room).
const HALF_LIFE_MS = 5000;
/** Weight of one event so that a steady rate of λ/s reads as λ. */
const K = (Math.LN2 * 1000) / HALF_LIFE_MS;

export class RateMeter {
  private readonly rooms = new Map<string, { rate: number; at: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  add(room: string, n: number): void {
    const t = this.now();
    const r = this.rooms.get(room);
    if (!r) {
      this.rooms.set(room, { rate: n * K, at: t });
      return;
    }
    r.rate = this.decayed(r, t) + n * K;
    r.at = t;
  }

  perSec(room: string): number {
    const r = this.rooms.get(room);
    return r ? this.decayed(r, this.now()) : 0;
  }

  /** Forgets rooms whose rate has decayed to nothing. */
  sweep(): void {
    const t = this.now();
    for (const [room, r] of this.rooms) if (this.decayed(r, t) < 0.001) this.rooms.delete(room);
  }

  private decayed(r: { rate: number; at: number }, t: number): number {
    return r.rate * Math.pow(0.5, (t - r.at) / HALF_LIFE_MS);
  }
}
