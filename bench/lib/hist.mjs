// A latency histogram with 1 ms bins up to 60 s (plus the exact max): cheap to record on the
// hot path, mergeable across processes (sent over IPC as sparse [ms, count] pairs).
export const HIST_MAX_MS = 60_000;

export class Hist {
  constructor() {
    this.bins = new Uint32Array(HIST_MAX_MS + 1);
    this.n = 0;
    this.max = 0;
    this.sum = 0;
  }

  record(ms, count = 1) {
    if (ms < 0) ms = 0;
    if (ms > this.max) this.max = ms;
    this.bins[ms > HIST_MAX_MS ? HIST_MAX_MS : Math.floor(ms)] += count;
    this.n += count;
    this.sum += ms * count;
  }

  reset() {
    this.bins.fill(0);
    this.n = 0;
    this.max = 0;
    this.sum = 0;
  }

  toJSON() {
    const pairs = [];
    for (let i = 0; i <= HIST_MAX_MS; i++) if (this.bins[i]) pairs.push(i, this.bins[i]);
    return { pairs, n: this.n, max: this.max, sum: this.sum };
  }

  merge(j) {
    if (!j) return this;
    for (let i = 0; i < j.pairs.length; i += 2) this.bins[j.pairs[i]] += j.pairs[i + 1];
    this.n += j.n;
    this.sum += j.sum;
    if (j.max > this.max) this.max = j.max;
    return this;
  }

  pct(p) {
    if (this.n === 0) return null;
    const want = Math.ceil((p / 100) * this.n);
    let acc = 0;
    for (let i = 0; i <= HIST_MAX_MS; i++) {
      acc += this.bins[i];
      if (acc >= want) return i;
    }
    return this.max;
  }

  summary() {
    if (this.n === 0) return { n: 0, p50: null, p90: null, p99: null, max: null, mean: null };
    return { n: this.n, p50: this.pct(50), p90: this.pct(90), p99: this.pct(99), max: Math.round(this.max), mean: +(this.sum / this.n).toFixed(1) };
  }
}
