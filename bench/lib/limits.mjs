// Up-front checks of the kernel and process limits a run needs, with the command that fixes
// each. strict: a failed check stops the run (the million scenario); otherwise it warns.
import { readFileSync } from 'node:fs';
import { freemem } from 'node:os';
import net from 'node:net';
import { log } from './common.mjs';

/** Members per roomcast worker the million bench plans for: under the 20,000 open files with SO_REUSEPORT's uneven spread. */
export const MEMBERS_PER_WORKER = 17_000;

const read = (p) => {
  try {
    return readFileSync(p, 'utf8').trim();
  } catch {
    return null;
  }
};

function nofile() {
  const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(read('/proc/self/limits') ?? '');
  const n = (v) => (v === 'unlimited' ? Infinity : Number(v));
  return m ? { soft: n(m[1]), hard: n(m[2]) } : { soft: 0, hard: 0 };
}

export function memAvailable() {
  const m = /MemAvailable:\s+(\d+) kB/.exec(read('/proc/meminfo') ?? '');
  return m ? Number(m[1]) * 1024 : freemem();
}

async function canBind(addr) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(0, addr, () => s.close(() => resolve(true)));
  });
}

/**
 * need: { members, perProcess (max sockets in one process), processes, addrs (source
 * addresses to be used), memPerMemberBytes }.
 */
export async function checkLimits(need, { strict = false } = {}) {
  const checks = [];
  const add = (name, ok, have, want, fix, warnOnly = false) => checks.push({ name, ok, have, want, fix, level: ok ? 'ok' : warnOnly ? 'warn' : 'fail' });
  const sockets = need.members * 2; // both ends are on this machine
  const nf = nofile();
  add('open files per process (ulimit -n)', nf.soft >= need.perProcess + 500, `${nf.soft} (hard ${nf.hard})`, `≥ ${need.perProcess + 500}`,
    'ulimit -n 20000 (the hard limit here is 20,000: keep ≤ ~19k sockets per process — use more workers/--gens)');
  const fileMax = Number((read('/proc/sys/fs/file-max') ?? '0').split(/\s+/)[0]);
  add('fs.file-max', fileMax >= sockets + 50_000, fileMax, `≥ ${sockets + 50_000}`, `sysctl -w fs.file-max=${Math.max(2_500_000, sockets * 2)}`);
  // Members bind explicit source ports, 10000–59999 on each address (lib/gen-worker.mjs);
  // half of that window is left for the retries' windows.
  const addrs = need.addrs ?? Math.max(2, Math.ceil(need.members / 20_000));
  add('members per source address', need.members / addrs <= 25_000, `${Math.ceil(need.members / addrs)} per address (${addrs} addresses)`, '≤ 25,000', 'raise --addrs');
  const somax = Number(read('/proc/sys/net/core/somaxconn') ?? 0);
  add('net.core.somaxconn', somax >= 4096, somax, '≥ 4096', 'sysctl -w net.core.somaxconn=65535', true);
  const syn = Number(read('/proc/sys/net/ipv4/tcp_max_syn_backlog') ?? 0);
  add('net.ipv4.tcp_max_syn_backlog', syn >= 2048, syn, '≥ 2048', 'sysctl -w net.ipv4.tcp_max_syn_backlog=65535', true);
  // Every packet looks its socket up in the established hash; both ends of each member are in
  // it, and past ~2 per bucket the chain walks (cache misses) grow with the room: at 1M members
  // on 262k buckets, __inet_lookup_established was 12% of the whole box (perf, 2026-12-06).
  const ehash = Math.abs(Number(read('/proc/sys/net/ipv4/tcp_ehash_entries') ?? 0));
  if (ehash > 0) {
    const want = 2 ** Math.ceil(Math.log2(sockets / 2));
    add('TCP established hash buckets', ehash >= sockets / 2, `${ehash} (${(sockets / ehash).toFixed(1)} sockets per bucket)`, `≥ ${want}`,
      `a network namespace with its own: sysctl -w net.ipv4.tcp_child_ehash_entries=${want}; unshare -n sh -c 'ip link set lo up; npm run bench:million -- …' (bench/README.md)`, true);
  }
  const tcpMem = (read('/proc/sys/net/ipv4/tcp_mem') ?? '0 0 0').split(/\s+/).map(Number);
  const wantPages = Math.ceil((need.members * 2 * 2048) / 4096); // ~2 KiB of queued data per socket at a fan-out peak
  add('net.ipv4.tcp_mem (max pages)', tcpMem[2] >= wantPages, `${tcpMem.join(' ')}`, `max ≥ ${wantPages}`,
    `sysctl -w net.ipv4.tcp_mem="${wantPages} ${wantPages * 2} ${wantPages * 3}"`, true);
  const ctMax = read('/proc/sys/net/netfilter/nf_conntrack_max');
  const ctCount = read('/proc/sys/net/netfilter/nf_conntrack_count');
  if (ctMax !== null) {
    const tracking = Number(ctCount) > 0;
    add('nf_conntrack_max (only if conntrack tracks loopback)', !tracking || Number(ctMax) >= sockets, `${ctMax} (tracked now: ${ctCount})`, `≥ ${sockets} when tracking`,
      `sysctl -w net.netfilter.nf_conntrack_max=${sockets * 2}  (or: iptables -t raw -A PREROUTING -i lo -j NOTRACK; iptables -t raw -A OUTPUT -o lo -j NOTRACK)`, !tracking);
  }
  // per member, measured in smoke runs: roomcast worker ~6 KiB + generator ~5 KiB + two kernel
  // sockets ~4.5 KiB; per process ~40 MiB private (the node binary's pages are shared)
  const memPer = need.memPerMemberBytes ?? 16 * 1024;
  const memNeed = need.members * memPer + (need.processes ?? 4) * 40 * 2 ** 20;
  const avail = memAvailable();
  add('available memory', avail >= memNeed, `${(avail / 2 ** 30).toFixed(1)} GiB`, `≥ ${(memNeed / 2 ** 30).toFixed(1)} GiB (estimate)`, 'fewer members, or stop other work on the machine');
  const lastAddr = `127.0.${Math.floor((addrs + 1) / 256)}.${(addrs + 1) % 256}`;
  add(`loopback source address ${lastAddr} bindable`, await canBind(lastAddr), '', 'bindable', 'the whole 127.0.0.0/8 must route to lo (Linux default)');

  const bad = checks.filter((c) => c.level === 'fail');
  const warn = checks.filter((c) => c.level === 'warn');
  if (strict || bad.length || warn.length) {
    for (const c of checks) {
      const tag = c.level === 'ok' ? ' ok ' : c.level === 'warn' ? 'WARN' : 'FAIL';
      log(`[${tag}] ${c.name}: have ${c.have}, need ${c.want}${c.level === 'ok' ? '' : `\n         fix: ${c.fix}`}`);
    }
  }
  if (bad.length && strict) {
    throw new Error(`${bad.length} limit check(s) failed (see above); fix them or pass --skip-checks to run anyway`);
  }
  return checks;
}
