// Token verification (PROTOCOL §2): HS256 JWTs via fast-jwt, mapped to the credentials a
// connection carries. Any failure is an AuthError whose reason labels the auth metric.
import { createSigner, createVerifier as createFastVerifier, TokenError } from 'fast-jwt';
import { isUid, UID_MAX } from '../protocol/ops.js';

export type Role = 'viewer' | 'moderator';

/**
 * What a connection may do, kept for its lifetime: ~56 bytes a member, so a guest is a role
 * rather than a boolean of its own and `name` is left out when the token has none (each field
 * is 8 bytes per member).
 */
export interface Credentials {
  uid: string;
  name?: string;
  /** Allowed rooms; entries ending in `*` are prefixes. Undefined = any room. */
  rooms?: readonly string[];
  /** `guest`: a read-only guest connection (PROTOCOL §1), never a token's claim. */
  role: Role | 'guest';
  /**
   * Token expiry, the `exp` claim: seconds since epoch (Infinity for guests). Seconds stay a
   * small integer in the object, where milliseconds would be a 16-byte heap number per member.
   */
  exp: number;
}

export type AuthFailure = 'missing' | 'expired' | 'signature' | 'malformed' | 'claims';

export class AuthError extends Error {
  constructor(readonly reason: AuthFailure, message: string) {
    super(message);
  }
}

export interface TokenVerifier {
  /** Synchronous, so the upgrade completes inside uWS's upgrade handler (no async gap). */
  verify(token: string): Credentials;
}

const FAILURES: Record<string, AuthFailure> = {
  [TokenError.codes.expired]: 'expired',
  [TokenError.codes.inactive]: 'claims',
  [TokenError.codes.invalidSignature]: 'signature',
  [TokenError.codes.missingRequiredClaim]: 'claims',
  [TokenError.codes.invalidClaimType]: 'claims',
  [TokenError.codes.invalidClaimValue]: 'claims',
};

export function createVerifier(secret: string): TokenVerifier {
  const verify = createFastVerifier({ key: secret, algorithms: ['HS256'], requiredClaims: ['sub', 'exp'], cache: false });
  return {
    verify(token) {
      let payload: Record<string, unknown>;
      try {
        payload = verify(token) as Record<string, unknown>;
      } catch (err) {
        const reason = err instanceof TokenError ? (FAILURES[err.code] ?? 'malformed') : 'malformed';
        throw new AuthError(reason, err instanceof TokenError && reason !== 'malformed' ? err.message : 'malformed token');
      }
      return toCredentials(payload);
    },
  };
}

function toCredentials(p: Record<string, unknown>): Credentials {
  const { sub, exp, name, rooms, role } = p;
  if (!isUid(sub)) throw new AuthError('claims', `sub must be 1-${UID_MAX} chars`);
  if (sub.startsWith('guest:')) throw new AuthError('claims', 'sub may not use the guest: prefix');
  if (typeof exp !== 'number') throw new AuthError('claims', 'exp must be a number');
  if (name !== undefined && (typeof name !== 'string' || name.length > 32)) throw new AuthError('claims', 'name must be at most 32 chars');
  if (rooms !== undefined && (!Array.isArray(rooms) || !rooms.every((r) => typeof r === 'string' && r.length > 0))) {
    throw new AuthError('claims', 'rooms must be a list of room ids');
  }
  if (role !== undefined && role !== 'viewer' && role !== 'moderator') throw new AuthError('claims', 'role must be viewer or moderator');
  const shared = rooms === undefined ? undefined : sharedRooms(rooms as string[]);
  const r: Role = (role as Role | undefined) ?? 'viewer';
  // Two literals, so each shape is allocated at its exact size (a property added later goes to
  // a backing store of its own).
  return name === undefined ? { uid: sub, rooms: shared, role: r, exp } : { uid: sub, name: name as string, rooms: shared, role: r, exp };
}

/** Distinct `rooms` claims kept for sharing; beyond it claims are not shared (never evicted). */
const SHARED_ROOMS_MAX = 4096;
const roomsClaims = new Map<string, readonly string[]>();

/**
 * One frozen array per distinct `rooms` claim: an audience of a show mostly holds the same
 * claim, and each connection keeps its credentials for its lifetime.
 */
function sharedRooms(rooms: string[]): readonly string[] {
  const key = JSON.stringify(rooms);
  const known = roomsClaims.get(key);
  if (known) return known;
  const frozen = Object.freeze(rooms.slice());
  if (roomsClaims.size < SHARED_ROOMS_MAX) roomsClaims.set(key, frozen);
  return frozen;
}

/** A read-only guest, limited to `rooms` (the deployment's guestRooms, in the rooms claim syntax). */
export function guestCredentials(sid: string, rooms: readonly string[]): Credentials {
  return { uid: `guest:${sid}`, rooms, role: 'guest', exp: Infinity };
}

/** Whether a token's `rooms` claim lets it join `room`. */
export function mayJoin(creds: Credentials, room: string): boolean {
  if (!creds.rooms) return true;
  return creds.rooms.some((r) => (r.endsWith('*') ? room.startsWith(r.slice(0, -1)) : r === room));
}

export interface MintOptions {
  uid: string;
  name?: string;
  ttlSec?: number;
  rooms?: string[];
  role?: Role;
}

/** Mints a token as a business backend would (used by `roomcast token` and dev mode). */
export async function mintToken(secret: string, o: MintOptions): Promise<string> {
  const claims: Record<string, unknown> = { sub: o.uid };
  if (o.name !== undefined) claims.name = o.name;
  if (o.rooms !== undefined) claims.rooms = o.rooms;
  if (o.role !== undefined) claims.role = o.role;
  const sign = createSigner({ key: secret, algorithm: 'HS256', expiresIn: (o.ttlSec ?? 3600) * 1000 });
  return sign(claims);
}
