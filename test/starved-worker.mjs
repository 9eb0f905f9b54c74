// A worker whose whole process stalls while its peers run on (test/bus-redis-starved.test.ts):
// a Redis bus (dist build) that reports member counts, then blocks its event loop when told.
// argv: redis url, key prefix, worker id, room, count. stdin lines: `stall <ms>`; stdout: `ready`, `stalled`.
import { createInterface } from 'node:readline';
import { RedisStreamsBus } from '../dist/src/bus/redis-streams-bus.js';

const [url, prefix, workerId, room, count] = process.argv.slice(2);
const bus = new RedisStreamsBus({ target: { url }, prefix, history: 100, workerId, heartbeatMs: 100, partitions: 4 });
await bus.start({ onEntries() {}, onControl() {} });
bus.reportMembers(new Map([[room, Number(count)]]));
setTimeout(() => console.log('ready'), 300); // a few heartbeats: the counts are written
createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, ms] = line.split(' ');
  if (cmd !== 'stall') return;
  const until = performance.now() + Number(ms);
  while (performance.now() < until) {
    /* a starved loop: no timer, no heartbeat */
  }
  console.log('stalled');
});
process.stdin.on('end', () => void bus.close().then(() => process.exit(0)));
