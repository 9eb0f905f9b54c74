// The one token bucket of the codebase: per-user limits (chat, likes, joins), per-IP upgrades,
// the API's per-room rate and the per-room chat budget. Hand-written: a bucket is two numbers
// checked once per op, so a library would add only indirection.

export class TokenBucket {
  constructor(
    private tokens: number,
    private at: number,
  ) {}

  /**
   * Refills at `rate` tokens per second up to `capacity` and returns what is there. Both may
   * change between calls (a worker's share of a cluster-wide rate moves with its members).
   */
  refill(now: number, rate: number, capacity: number): number {
    this.tokens = Math.min(capacity, this.tokens + (Math.max(0, now - this.at) / 1000) * rate);
    this.at = now;
    return this.tokens;
  }

  /** Takes one token; returns 0 when allowed, else the ms until one is there. */
  take(now: number, rate: number, capacity: number): number {
    if (this.refill(now, rate, capacity) >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) / rate) * 1000);
  }

  spend(n: number): void {
    this.tokens -= n;
  }

  /** ms since the last refill. */
  idleFor(now: number): number {
    return now - this.at;
  }
}

export interface BucketSpec {
  /** tokens per second */
  rate: number;
  burst: number;
}

/** One bucket per key (user, IP, room), created full on first use. */
export class RateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly spec: BucketSpec,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Takes one token for `key`; returns 0 when allowed, else the ms until one is available.
   * `share` (0..1] scales rate and burst: this process's part of a limit shared with others.
   * The burst never drops below one token, so every share can still act, at its share of the rate.
   */
  take(key: string, share = 1): number {
    const t = this.now();
    const capacity = Math.max(1, this.spec.burst * share);
    let b = this.buckets.get(key);
    if (!b) this.buckets.set(key, (b = new TokenBucket(capacity, t)));
    return b.take(t, this.spec.rate * share, capacity);
  }

  /** Keys with a bucket (not yet swept as full). */
  get size(): number {
    return this.buckets.size;
  }

  /** Drops buckets that have refilled completely; they carry no state worth keeping. */
  sweep(): void {
    const t = this.now();
    const fullAfterMs = (this.spec.burst / this.spec.rate) * 1000;
    for (const [k, b] of this.buckets) if (b.idleFor(t) > fullAfterMs) this.buckets.delete(k);
  }
}
