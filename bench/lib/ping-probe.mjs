// One member socket in the bench's own (lightly loaded) process that pings on a timer: its
// round trip measures the server's responsiveness, where a ping from a generator socket also
// counts that generator's event-loop lag (a generator process parses thousands of members'
// frames). The socket joins the room, so it gets the room's batches like any member.
import WebSocket from 'ws';
import { decode, encode } from '@msgpack/msgpack';
import { Hist } from './hist.mjs';
import { mintToken } from './token.mjs';

export async function startPingProbe({ url, secret, room, everyMs = 500 }) {
  const token = mintToken(secret, 'ping-probe', 7200);
  const ws = new WebSocket(`ws://${url.host}:${url.port}/ws?room=${encodeURIComponent(room)}&token=${token}`);
  ws.binaryType = 'nodebuffer';
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const hist = new Hist();
  const sent = new Map();
  let ref = 0;
  ws.on('message', (data) => {
    const f = decode(data);
    if (f.op !== 'pong') return;
    const at = sent.get(f.ref);
    if (at === undefined) return;
    sent.delete(f.ref);
    hist.record(performance.now() - at);
  });
  const timer = setInterval(() => {
    ref++;
    sent.set(ref, performance.now());
    ws.send(encode({ op: 'ping', ref }));
    if (sent.size > 1000) sent.clear(); // pongs that never came (server gone)
  }, everyMs);
  return {
    /** The round trips since the last call. */
    window() {
      const s = hist.summary();
      hist.reset();
      return s;
    },
    stop() {
      clearInterval(timer);
      ws.close();
    },
  };
}
