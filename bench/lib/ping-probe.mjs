// Member sockets in the bench's own (lightly loaded) process that ping on a timer, in turn: their
// round trip measures the server's responsiveness, where a ping from a generator socket also
// counts that generator's event-loop lag (a generator process parses thousands of members'
// frames). Several sockets, so the workers behind the shared port are all likely probed, and a
// ping every `everyMs` across them: ~10 a second gives a p99 over hundreds of round trips, not
// the slowest of a few dozen. The sockets join the room, so they get its batches like any member.
import WebSocket from 'ws';
import { decode, encode } from '@msgpack/msgpack';
import { Hist } from './hist.mjs';
import { mintToken } from './token.mjs';

export async function startPingProbe({ url, secret, room, sockets = 8, everyMs = 100 }) {
  const hist = new Hist();
  const sent = new Map();
  const conns = await Promise.all(
    Array.from({ length: sockets }, async (_, i) => {
      const token = mintToken(secret, `ping-probe-${i}`, 7200);
      const ws = new WebSocket(`ws://${url.host}:${url.port}/ws?room=${encodeURIComponent(room)}&token=${token}`);
      ws.binaryType = 'nodebuffer';
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      ws.on('message', (data) => {
        const f = decode(data);
        if (f.op !== 'pong') return;
        const at = sent.get(f.ref);
        if (at === undefined) return;
        sent.delete(f.ref);
        hist.record(performance.now() - at);
      });
      return ws;
    }),
  );
  let ref = 0;
  const timer = setInterval(() => {
    ref++;
    sent.set(ref, performance.now());
    conns[ref % conns.length].send(encode({ op: 'ping', ref }));
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
      for (const ws of conns) ws.close();
    },
  };
}
