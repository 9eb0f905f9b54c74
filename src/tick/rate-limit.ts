// Per-user token buckets (chat, likes, joins). Hand-written: checked once per inbound op,
// and a bucket is two numbers, so a library would add only indirection.
export interface BucketSpec {
  rate: number; // tokens per second
  burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly spec: BucketSpec,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one token for `key`; returns 0 when allowed, else the ms until one is available. */
  take(key: string): number {
    const t = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: this.spec.burst, at: t };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.spec.burst, b.tokens + ((t - b.at) / 1000) * this.spec.rate);
      b.at = t;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / this.spec.rate) * 1000);
  }

  /** Drops buckets that have refilled completely; they carry no state worth keeping. */
  sweep(): void {
    const t = this.now();
    const fullAfterMs = (this.spec.burst / this.spec.rate) * 1000;
    for (const [k, b] of this.buckets) if (t - b.at > fullAfterMs) this.buckets.delete(k);
  }
}
