// Peer 1, the ceiling: a bare uWebSockets.js server (roomcast's own native loader) that
// publishes one binary frame per tick per room to a topic, fanned out in C++ by uWS.
// Same port for every worker (SO_REUSEPORT); several workers relay frames through Redis.
import { encode } from '@msgpack/msgpack';
import { loadUws } from '../../dist/src/gateway/uws.js';
import { peerFlags, PeerRooms, relay, toMsg } from './peer-common.mjs';

const o = peerFlags();
const uws = loadUws();
const app = uws.App();
const rooms = new PeerRooms();
const seqOf = (room) => (r.localSeq ? r.localSeq(room) : rooms.seq(room));
const r = await relay({
  o,
  rooms,
  encodeFrame: (b) => encode({ op: 'batch', room: b.room, epoch: 'peer', from: b.seq, to: b.seq, msgs: b.msgs }),
  fanout: (room, frame) => app.publish(room, frame, true),
});

app.ws('/ws', {
  compression: uws.DISABLED,
  maxPayloadLength: 16 * 1024,
  idleTimeout: o.idleTimeoutSec,
  maxBackpressure: o.maxBackpressure,
  closeOnBackpressureLimit: 0,
  sendPingsAutomatically: true,
  upgrade: (res, req, ctx) => {
    const room = new URLSearchParams(req.getQuery() ?? '').get('room') ?? 'r';
    const key = req.getHeader('sec-websocket-key');
    const proto = req.getHeader('sec-websocket-protocol');
    const ext = req.getHeader('sec-websocket-extensions');
    if (!o.asyncUpgrade) return res.upgrade({ room }, key, proto, ext, ctx);
    // diagnostic: upgrade after a promise, as roomcast does after verifying the token
    let aborted = false;
    res.onAborted(() => (aborted = true));
    void Promise.resolve().then(() => !aborted && res.cork(() => res.upgrade({ room }, key, proto, ext, ctx)));
  },
  open: (ws) => {
    const { room } = ws.getUserData();
    ws.send(encode({ op: 'joined', room, epoch: 'peer', seq: seqOf(room), members: 0 }), true);
    ws.subscribe(room);
  },
  message: () => {},
});

app.post('/v1/rooms/:room/messages', (res, req) => {
  const room = req.getParameter(0);
  let body = Buffer.alloc(0);
  let aborted = false;
  res.onAborted(() => (aborted = true));
  res.onData((chunk, isLast) => {
    body = Buffer.concat([body, Buffer.from(chunk)]);
    if (!isLast || aborted) return;
    const m = toMsg(body.toString());
    res.cork(() => {
      if (typeof m === 'string') res.writeStatus('400 Bad Request').end(JSON.stringify({ error: { code: 'BAD_REQUEST', message: m } }));
      else {
        r.ingress(room, m);
        res.writeStatus('202 Accepted').writeHeader('Content-Type', 'application/json').end('{}');
      }
    });
  });
});
app.get('/seqs', (res) => {
  let aborted = false;
  res.onAborted(() => (aborted = true));
  void r.seqs().then((s) => !aborted && res.cork(() => res.writeHeader('Content-Type', 'application/json').end(JSON.stringify(s))));
});
app.get('/healthz', (res) => res.end('ok'));
app.listen(o.host, o.port, (ls) => {
  if (!ls) {
    console.error(`uws-peer: cannot listen on ${o.port}`);
    process.exit(1);
  }
  console.log(JSON.stringify({ msg: 'peer listening', peer: 'uws', index: o.index, port: o.port }));
});
