// Capped exponential backoff with full jitter, for restarting crashed workers.
export function restartDelayMs(attempt: number, baseMs = 250, capMs = 10_000, random = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** attempt);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
