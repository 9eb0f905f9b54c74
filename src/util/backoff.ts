// The one backoff of the codebase (worker restarts, Redis reconnects and reads, the SDK's
// reconnects and re-joins): capped exponential with "equal jitter", so a fleet retrying
// together spreads out while no retry comes back immediately. No server imports: the SDK uses it.

export interface BackoffSpec {
  /** Ceiling of the first retry's delay. */
  baseMs: number;
  /** Ceiling of any retry's delay. */
  maxMs: number;
}

/** Delay before retry number `attempt` (0-based): uniform in [ceiling/2, ceiling]. */
export function backoffMs(attempt: number, spec: BackoffSpec, random: () => number = Math.random): number {
  const ceiling = Math.min(spec.maxMs, spec.baseMs * 2 ** Math.min(Math.max(0, attempt), 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
