// Where in Node's event-loop iteration work runs. A timer fires before the poll phase reads
// sockets; an immediate runs in the check phase, after it. Work placed by these reads what the
// poll brought first (ticker.ts, pipeline.ts, room-fanout.ts say why each needs it).

/** Resolves in the check phase: after the microtasks queued now and this iteration's poll. */
export const checkPhase = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Runs `fn` once the loop has polled again, from any phase: an immediate set in an I/O callback
 * runs in the same iteration's check phase, with no poll between; one set from an immediate runs
 * after the next poll.
 */
export function afterNextPoll(fn: () => void): void {
  setImmediate(() => setImmediate(fn));
}
