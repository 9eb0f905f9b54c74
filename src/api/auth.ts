// Bearer API key check in constant time: both sides are hashed first so neither the
// content nor the length of the key leaks through timing.
import { hash, timingSafeEqual } from 'node:crypto';

// One-shot hash(): half the cost of a Hash object, and it runs on every API request.
const digest = (s: string) => hash('sha256', s, 'buffer');

/** Accepted headers remembered at most (a backend sends one, a key rotation two). */
const REMEMBERED = 8;

export function createKeyCheck(apiKey: string | null): (authorization: string | undefined) => boolean {
  const expected = apiKey === null ? null : digest(apiKey);
  // Headers that passed, so a backend's steady posts skip the regex and the hash (~2 µs a post,
  // bench/notes/big-room.md, session 21). A Set finds a string by its hash and compares the text
  // only when the hashes match: a wrong key costs a lookup that misses, then the full check below.
  const accepted = new Set<string>();
  return (authorization) => {
    if (authorization !== undefined && accepted.has(authorization)) return true;
    const m = /^Bearer +(.+)$/i.exec(authorization ?? '');
    const given = digest(m?.[1] ?? '');
    // Compare even when no key is configured (or none given), so every path costs the same.
    const same = timingSafeEqual(given, expected ?? digest('\0no key configured'));
    const ok = expected !== null && m !== null && same;
    if (ok) {
      if (accepted.size >= REMEMBERED) accepted.clear();
      accepted.add(authorization!);
    }
    return ok;
  };
}
