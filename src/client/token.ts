// Reads a JWT's `exp` without verifying it (the server verifies; the SDK only needs to know
// when to ask for a fresh token).

/** The token's `exp` in ms since the epoch, or undefined when it has none or is not a JWT. */
export function tokenExpiryMs(token: string): number | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const payload = JSON.parse(base64UrlDecode(part)) as { exp?: unknown };
    return typeof payload.exp === 'number' && Number.isFinite(payload.exp) ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

function base64UrlDecode(s: string): string {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4);
  const atob = (globalThis as { atob?: (s: string) => string }).atob;
  if (typeof atob !== 'function') throw new Error('atob is not available');
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}
