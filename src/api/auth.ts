// Bearer API key check in constant time: both sides are hashed first so neither the
// content nor the length of the key leaks through timing.
import { hash, timingSafeEqual } from 'node:crypto';

// One-shot hash(): half the cost of a Hash object, and it runs on every API request.
const digest = (s: string) => hash('sha256', s, 'buffer');

export function createKeyCheck(apiKey: string | null): (authorization: string | undefined) => boolean {
  const expected = apiKey === null ? null : digest(apiKey);
  return (authorization) => {
    const m = /^Bearer +(.+)$/i.exec(authorization ?? '');
    const given = digest(m?.[1] ?? '');
    // Compare even when no key is configured (or none given), so every path costs the same.
    const same = timingSafeEqual(given, expected ?? digest('\0no key configured'));
    return expected !== null && m !== null && same;
  };
}
