// The client's address for per-IP limits and logs. Behind a load balancer the TCP peer is the
// proxy; only when that peer is trusted (--trust-proxy) are X-Forwarded-For / Forwarded read,
// walking from the right past trusted hops, so a client cannot spoof its address by sending
// the headers itself. CIDR matching is node's net.BlockList.
import { BlockList, isIP } from 'node:net';

export interface ForwardingHeaders {
  'x-forwarded-for'?: string;
  forwarded?: string;
}

export type ClientIp = (peer: string, headers: ForwardingHeaders) => string;

export function createClientIp(trusted: readonly string[]): ClientIp {
  if (trusted.length === 0) return (peer) => normalize(peer) ?? peer;
  const list = new BlockList();
  for (const cidr of trusted) {
    const [addr = '', prefix] = cidr.split('/');
    const ip = normalize(addr) ?? addr;
    const type = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(ip, type);
    else list.addSubnet(ip, Number(prefix), type);
  }
  const isTrusted = (ip: string) => list.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4');
  return (peer, headers) => {
    let client = normalize(peer) ?? peer;
    if (!isTrusted(client)) return client;
    const hops = forwardedFor(headers);
    // Right to left: each hop was added by the (trusted) proxy to its right.
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      if (hop === undefined) break; // unparseable: stop at the last address we can vouch for
      client = hop;
      if (!isTrusted(hop)) break;
    }
    return client;
  };
}

/** The `for` addresses, oldest first; undefined for an entry that is not an address. */
function forwardedFor(h: ForwardingHeaders): Array<string | undefined> {
  const xff = h['x-forwarded-for'];
  if (xff) return xff.split(',').map((s) => normalize(s.trim()));
  const fwd = h.forwarded;
  if (!fwd) return [];
  return fwd.split(',').map((element) => {
    const pair = element.split(';').map((p) => p.trim()).find((p) => p.toLowerCase().startsWith('for='));
    return pair === undefined ? undefined : normalize(pair.slice(4).replace(/^"|"$/g, ''));
  });
}

/** A bare address from `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1` or `::ffff:1.2.3.4`. */
function normalize(s: string): string | undefined {
  let a = s;
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(a);
  if (bracket) a = bracket[1]!;
  else if (/^[\d.]+:\d+$/.test(a)) a = a.slice(0, a.lastIndexOf(':'));
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (mapped) a = mapped[1]!;
  return isIP(a) === 0 ? undefined : a.toLowerCase();
}
