// Repeated runs of one contender merged into one: each rate's row is the median of the runs
// that measured it. One big-room step moves by ±20 % between runs minutes apart on this box
// (bench/notes/big-room.md), so a single run's per-rate ratios say more about the box than
// about the engines; the median of three, run alternately with the peer, much less.

/** Upper median: the middle value, or the larger of the two middle ones. */
export function upperMedian(values) {
  const v = [...values].sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)];
}

/** Lower median: the middle value, or the smaller of the two middle ones. */
export function lowerMedian(values) {
  const v = [...values].sort((a, b) => a - b);
  return v[Math.ceil(v.length / 2) - 1];
}

/**
 * One row per rate from the rows the runs measured there. The row is the run whose p99 is
 * the (upper) median, with the (lower) median delivered msgs/s: each side's doubt goes
 * against it, the same way for every contender. Sustained when more than half the runs
 * sustained it. `runs` keeps each run's p99, delivered and verdict.
 */
export function mergeRows(rows) {
  const withP99 = rows.filter((r) => r.latencyMs.p99 !== null && r.latencyMs.p99 !== undefined);
  const p99 = withP99.length ? upperMedian(withP99.map((r) => r.latencyMs.p99)) : null;
  const base = withP99.find((r) => r.latencyMs.p99 === p99) ?? rows[0];
  const oks = rows.filter((r) => r.ok).length;
  return {
    ...base,
    deliveredMsgsPerSec: lowerMedian(rows.map((r) => r.deliveredMsgsPerSec ?? 0)),
    ok: oks * 2 > rows.length,
    note: oks * 2 > rows.length ? undefined : `sustained in ${oks} of ${rows.length} runs${base.note ? `; ${base.note}` : ''}`,
    runs: rows.map((r) => ({ p99: r.latencyMs.p99, delivered: r.deliveredMsgsPerSec, ok: r.ok })),
  };
}

/**
 * Merges one contender's runs (same kind, members, workers): steps by rate, in rate order.
 * A run's stop (a step that failed to run at all) counts as that run's failure at its rate.
 */
export function mergeRuns(runs) {
  const byRate = new Map();
  for (const run of runs) {
    for (const s of run.steps) byRate.set(s.rate, [...(byRate.get(s.rate) ?? []), s]);
  }
  const steps = [...byRate.keys()].sort((a, b) => a - b).map((rate) => mergeRows(byRate.get(rate)));
  const stops = runs.map((r) => r.stoppedAt).filter(Boolean);
  const merged = { ...runs[0], steps, repeats: runs.length };
  delete merged.ceiling; // summarize() finds them again from the merged steps
  delete merged.sustained;
  merged.stoppedAt = stops.length * 2 > runs.length ? stops.reduce((a, b) => (a.rate <= b.rate ? a : b)) : undefined;
  // server RSS per member (measured once per run, before traffic): the run with the median
  const rss = runs.filter((r) => typeof r.serverRssPerMemberKiB === 'number');
  if (rss.length) {
    const mid = upperMedian(rss.map((r) => r.serverRssPerMemberKiB));
    const run = rss.find((r) => r.serverRssPerMemberKiB === mid);
    for (const k of ['serverRssPerMemberKiB', 'serverRssTotalPerMemberKiB', 'serverRssMiB', 'serverRssEachMiB']) merged[k] = run[k];
  }
  return merged;
}
