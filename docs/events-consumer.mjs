// Example consumer of roomcast's business events (docs/protocol.md §8 "Business events"):
// checks each batch's signature and appends the logged messages to an archive file, one JSON
// line per log entry, to replay the danmaku over a show's recording later.
//   ROOMCAST_EVENTS_SECRET=… ARCHIVE=archive.jsonl PORT=9000 node docs/events-consumer.mjs
// and start roomcast with --events-url http://127.0.0.1:9000/ (and that secret, or its API key).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';

const secret = process.env.ROOMCAST_EVENTS_SECRET ?? 'dev';
const archive = process.env.ARCHIVE ?? 'archive.jsonl';
const seen = new Set(); // batch ids: a batch retried after a lost answer is written once

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const want = Buffer.from('sha256=' + createHmac('sha256', secret).update(body).digest('hex'));
    const got = Buffer.from(String(req.headers['x-roomcast-signature'] ?? ''));
    if (got.length !== want.length || !timingSafeEqual(got, want)) return res.writeHead(401).end();
    const batch = JSON.parse(body.toString('utf8'));
    if (!seen.has(batch.id)) {
      seen.add(batch.id);
      const entries = batch.events.filter((e) => e.type === 'message.appended');
      appendFileSync(archive, entries.map((e) => JSON.stringify(e) + '\n').join(''));
    }
    res.writeHead(204).end(); // anything but 2xx makes roomcast retry the batch
  });
});
server.listen(Number(process.env.PORT ?? 9000), '127.0.0.1', () => console.log(`listening on ${server.address().port}`));
