// How many sockets a user has on this node, and this worker's share of the user's per-user
// limits. A single process counts its own sockets; the workers of a supervised node learn
// the node-wide counts from the supervisor (src/cluster/user-counts.ts).
export interface UserPresence {
  opened(uid: string): void;
  closed(uid: string): void;
  /** The user's sockets on this node. */
  count(uid: string): number;
  /** This worker's part (0..1] of the user's chat, like and join limits: its part of the user's sockets. */
  share(uid: string): number;
}

/** The user's sockets on this worker (Membership counts them). */
export type LocalCount = (uid: string) => number;

/** Builds a worker's presence on the engine's own count of local sockets (no second map per user). */
export type UserPresenceFactory = (local: LocalCount) => UserPresence;

/** One worker is the whole node. */
export function localUsers(local: LocalCount): UserPresence {
  return {
    opened: () => undefined,
    closed: () => undefined,
    count: local,
    share: () => 1,
  };
}
