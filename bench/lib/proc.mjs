// Server-side CPU and memory from /proc: utime+stime of each process and VmRSS, for a set
// of pids (a supervisor's workers are found through the ppid field of /proc/<pid>/stat).
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let CLK_TCK = 100;
try {
  CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
} catch {}

function statFields(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // the command name may contain spaces: fields start after the last ')'
  return s.slice(s.lastIndexOf(')') + 2).split(' ');
}

/** CPU seconds used so far (user + system) and RSS bytes; undefined if the pid is gone. */
export function sample(pid) {
  try {
    const f = statFields(pid);
    const cpu = (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime (fields 14, 15)
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return { cpu, rss: m ? Number(m[1]) * 1024 : 0 };
  } catch {
    return undefined;
  }
}

export function childrenOf(ppid) {
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (Number(statFields(d)[1]) === ppid) out.push(Number(d));
    } catch {}
  }
  return out;
}

/** A snapshot of many pids: mark() now, then diff(mark) later gives CPU % and RSS. */
export function mark(pids) {
  const at = performance.now();
  const per = {};
  for (const pid of pids) per[pid] = sample(pid);
  return { at, per };
}

export function diff(before, pids = Object.keys(before.per).map(Number)) {
  const now = mark(pids);
  const secs = (now.at - before.at) / 1000;
  let cpu = 0;
  let rss = 0;
  const each = [];
  for (const pid of pids) {
    const a = before.per[pid];
    const b = now.per[pid];
    if (!b) continue;
    const c = a ? (b.cpu - a.cpu) / secs : 0;
    cpu += c;
    rss += b.rss;
    each.push({ pid, cpuPct: +(c * 100).toFixed(1), rssMiB: +(b.rss / 2 ** 20).toFixed(1) });
  }
  return { secs, cpuPct: +(cpu * 100).toFixed(1), rss, each };
}

/** Each process's RSS in MiB (0 when gone), in the order given. */
export function rssMiBEach(pids) {
  return pids.map((pid) => +((sample(pid)?.rss ?? 0) / 2 ** 20).toFixed(1));
}

export function totalRss(pids) {
  let rss = 0;
  for (const pid of pids) rss += sample(pid)?.rss ?? 0;
  return rss;
}
