// Rate plans for a contender's sweep. A plan says which rate to measure next (null: done) and
// judges each measured row. fixedPlan is the plain list of rates; ceilingPlan steps
// geometrically until a step is not sustained and one more step confirms it, so the sustained
// maximum lies between the last sustained rate and the next (at most `factor` apart).

/** The rates as given, in order; stops after a step with misses when stopOnFail. */
export function fixedPlan({ rates, stopOnFail = true, maxP99Ms = 0 }) {
  return {
    next(steps) {
      const last = steps.at(-1);
      if (last && !last.ok && stopOnFail) return null;
      return steps.length < rates.length ? rates[steps.length] : null;
    },
    judge(row) {
      if (maxP99Ms && row.latencyMs.p99 !== null && row.latencyMs.p99 > maxP99Ms) {
        row.ok = false;
        row.note = `p99 ${row.latencyMs.p99} ms over ${maxP99Ms} ms`;
      }
    },
  };
}

/**
 * Sustained = no misses (gaps, tail check, a quiet room after the step), delivered msgs/s ≥
 * minDelivered × rate × members, and p99 ≤ maxP99Ms. Rates are start × factor^k (k may go
 * below 0 when even the start rate is not sustained).
 * o: { start, factor, minDelivered, maxP99Ms, maxRate, maxSteps, confirm }
 */
export function ceilingPlan(o) {
  const factor = o.factor ?? 1.25;
  const confirm = o.confirm ?? 1;
  const rateAt = (k) => Math.max(1, Math.round(o.start * factor ** k));
  const kOf = (rate) => Math.round(Math.log(rate / o.start) / Math.log(factor));
  return {
    next(steps, stoppedAt) {
      if (stoppedAt || steps.length >= (o.maxSteps ?? 20)) return null;
      if (steps.length === 0) return rateAt(0);
      const last = steps.at(-1);
      const failedAbove = steps.some((s) => !s.ok && s.rate > last.rate);
      if (!steps.some((s) => s.ok)) {
        // nothing sustained yet: step down
        const r = rateAt(kOf(last.rate) - 1);
        return r < last.rate ? r : null;
      }
      if (last.ok && failedAbove) return null; // came down onto a sustained rate
      let trailing = 0;
      for (let i = steps.length - 1; i >= 0 && !steps[i].ok; i--) trailing++;
      if (trailing > confirm) return null; // a failure, confirmed by the next rate up
      let k = kOf(last.rate) + 1;
      while (rateAt(k) <= last.rate) k++; // small starts round to the same integer
      const r = rateAt(k);
      return o.maxRate && r > o.maxRate ? null : r;
    },
    judge(row) {
      const reasons = [];
      const offered = row.rate * row.open;
      row.offeredMsgsPerSec = offered;
      row.deliveredRatio = offered ? +(row.deliveredMsgsPerSec / offered).toFixed(3) : null;
      if (row.stepMissed || row.tailBehindMembers) reasons.push(`misses ${row.stepMissed}, ${row.tailBehindMembers} members behind at the tail check`);
      if (!row.quiet) reasons.push('frames still arriving after the step (backlog)');
      if (row.deliveredRatio !== null && row.deliveredRatio < o.minDelivered) reasons.push(`delivered ×${row.deliveredRatio} of offered`);
      if (o.maxP99Ms && row.latencyMs.p99 !== null && row.latencyMs.p99 > o.maxP99Ms) reasons.push(`p99 ${row.latencyMs.p99} ms over ${o.maxP99Ms} ms`);
      if (row.sentPerSec < o.minDelivered * row.rate) {
        const why = row.postBehind ? `in-flight cap reached, posts answered in p50 ${row.postRtt?.p50} ms` : `errors ${JSON.stringify(row.postStatus)}`;
        reasons.push(`took only ${row.sentPerSec} of ${row.rate} msgs/s in (${why}; senders ${row.senderCpuPct}% CPU)`);
      }
      row.ok = reasons.length === 0;
      row.note = reasons.join('; ') || undefined;
    },
    /** Where the sweep located the ceiling: the highest sustained rate and the failure above it. */
    summary(steps, stoppedAt) {
      const ok = steps.filter((s) => s.ok);
      const best = ok.reduce((b, s) => (!b || s.rate > b.rate ? s : b), null);
      const fails = steps.filter((s) => !s.ok && (!best || s.rate > best.rate)).map((s) => s.rate);
      if (stoppedAt && (!best || stoppedAt.rate > best.rate)) fails.push(stoppedAt.rate);
      const failAbove = fails.length ? Math.min(...fails) : null;
      return {
        rate: best?.rate ?? null,
        deliveredMsgsPerSec: best?.deliveredMsgsPerSec ?? null,
        p99: best?.latencyMs.p99 ?? null,
        firstFailAbove: failAbove,
        // located: a sustained rate with a failed one at most one factor above it
        located: best !== null && failAbove !== null,
        withinPct: best && failAbove ? Math.round((failAbove / best.rate - 1) * 100) : null,
        // rates below the ceiling that were not sustained (a blip the next rate did not confirm)
        holes: best ? steps.filter((s) => !s.ok && s.rate < best.rate).map((s) => s.rate) : [],
      };
    },
  };
}
