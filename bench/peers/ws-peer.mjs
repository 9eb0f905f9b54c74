// Peer 2: a plain `ws` server whose tick loops over the room's clients and sends the frame to
// each (skipping a socket whose buffer is over maxBackpressure, as roomcast and uWS do).
// One port per worker (Node 20 has no SO_REUSEPORT); several workers relay through Redis.
import { createServer } from 'node:http';
import { encode } from '@msgpack/msgpack';
import { WebSocketServer } from 'ws';
import { peerFlags, PeerRooms, relay, toMsg } from './peer-common.mjs';

const o = peerFlags();
const members = new Map(); // room -> Set<WebSocket>
const rooms = new PeerRooms();
let drops = 0;
const r = await relay({
  o,
  rooms,
  encodeFrame: (b) => encode({ op: 'batch', room: b.room, epoch: 'peer', from: b.seq, to: b.seq, msgs: b.msgs }),
  fanout: (room, frame) => {
    const set = members.get(room);
    if (!set) return;
    for (const ws of set) {
      if (ws.bufferedAmount > o.maxBackpressure) {
        drops++;
        continue;
      }
      ws.send(frame, { binary: true });
    }
  },
});
const seqOf = (room) => (r.localSeq ? r.localSeq(room) : rooms.seq(room));

const server = createServer((req, res) => {
  const m = /^\/v1\/rooms\/([^/]+)\/messages$/.exec(req.url ?? '');
  if (req.method === 'POST' && m) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const msg = toMsg(Buffer.concat(chunks).toString());
      if (typeof msg === 'string') {
        res.writeHead(400).end(JSON.stringify({ error: { code: 'BAD_REQUEST', message: msg } }));
        return;
      }
      r.ingress(decodeURIComponent(m[1]), msg);
      res.writeHead(202, { 'Content-Type': 'application/json' }).end('{}');
    });
    return;
  }
  if (req.url === '/seqs') {
    void r.seqs().then((s) => res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(s)));
    return;
  }
  if (req.url === '/drops') return void res.end(JSON.stringify({ drops }));
  if (req.url === '/healthz') return void res.end('ok');
  res.writeHead(404).end();
});
server.keepAliveTimeout = 60_000;
const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false, clientTracking: false, maxPayload: 16 * 1024 });
wss.on('connection', (ws, req) => {
  const room = new URL(req.url ?? '/', 'http://x').searchParams.get('room') ?? 'r';
  let set = members.get(room);
  if (!set) members.set(room, (set = new Set()));
  ws.send(encode({ op: 'joined', room, epoch: 'peer', seq: seqOf(room), members: set.size }), { binary: true });
  set.add(ws);
  ws.on('close', () => set.delete(ws));
  ws.on('error', () => {});
});
server.listen(o.port, o.host, () => console.log(JSON.stringify({ msg: 'peer listening', peer: 'ws', index: o.index, port: o.port })));
