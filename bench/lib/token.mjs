// HS256 client tokens as a business backend mints them (PROTOCOL §2), with node:crypto so a
// generator can mint tens of thousands per second. Verified by roomcast's jose verifier.
import { createHmac } from 'node:crypto';

const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');

export function mintToken(secret, sub, ttlSec = 3600, extra = {}) {
  const payload = Buffer.from(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + ttlSec, ...extra })).toString('base64url');
  const sig = createHmac('sha256', secret).update(`${HEADER}.${payload}`).digest('base64url');
  return `${HEADER}.${payload}.${sig}`;
}
