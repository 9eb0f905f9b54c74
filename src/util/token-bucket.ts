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
}

export interface BucketSpec {
  /** tokens per second */
  rate: number;
  burst: number;
}

/**
 * One bucket per key (user, IP, room, connection), full until first used. A key holds one number, not a
 * TokenBucket: the time its bucket is full again (the tokens it lacks, drained at the rate).
 * Every member holds a join bucket for a while after connecting, and an object with two heap
 * numbers was ~70 bytes per member.
 */
const TOKEN_SLACK = 1e-6;

export class RateLimiter<K = string> {
  private readonly fullAt = new Map<K, number>();

  constructor(
    private readonly spec: BucketSpec,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Takes `cost` tokens (all or none) for `key`; returns 0 when allowed, else the ms until
   * they are there, or Infinity when `cost` is over the whole burst (it never will be).
   * `share` (0..1] scales rate and burst: this process's part of a limit shared with others.
   * The burst never drops below one token nor below the cost asked, so every share can still
   * act (a frame of several likes included), at its share of the rate.
   */
  take(key: K, share = 1, cost = 1): number {
    if (cost > Math.max(1, this.spec.burst) + TOKEN_SLACK) return Infinity;
    const t = this.now();
    const rate = this.spec.rate * share;
    const capacity = Math.max(1, cost, this.spec.burst * share);
    const full = Math.max(t, this.fullAt.get(key) ?? t);
    const tokens = capacity - ((full - t) / 1000) * rate;
    // The slack absorbs float error: the tokens are computed from a time difference, and the
    // burst's last token (e.g. 3 - 3 × 333.33 ms × 3/s) must not come out a hair under one.
    if (tokens < cost - TOKEN_SLACK) return Math.ceil(((cost - tokens) / rate) * 1000);
    this.fullAt.set(key, full + (cost * 1000) / rate);
    return 0;
  }

  /** Keys with a bucket (not yet swept as full). */
  get size(): number {
    return this.fullAt.size;
  }

  /** Drops buckets that have refilled completely; they carry no state worth keeping. */
  sweep(): void {
    const t = this.now();
    for (const [k, full] of this.fullAt) if (full <= t) this.fullAt.delete(k);
  }
}
