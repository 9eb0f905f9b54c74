// Runs one autocannon load in its own process (so its CPU is not the orchestrator's) and
// sends back the summary.
import autocannon from 'autocannon';

process.once('message', async (o) => {
  const r = await autocannon({
    url: o.url,
    method: o.method,
    headers: o.headers,
    body: o.body,
    connections: o.connections,
    duration: o.durationS,
    pipelining: 1,
    timeout: 10,
  });
  process.send({
    requestsPerSec: r.requests.average,
    requestsTotal: r.requests.total,
    latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, mean: r.latency.average },
    throughputBytesPerSec: r.throughput.average,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    statusCodes: r.statusCodeStats,
    durationS: r.duration,
  });
  setTimeout(() => process.exit(0), 100);
});
