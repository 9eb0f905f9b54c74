// Peer 3: Socket.IO 4 (websocket transport only, no compression) with
// @socket.io/redis-streams-adapter between processes. Worker 0 takes the API posts and
// emits one `batch` event per room per tick to the room; the adapter carries it to the
// other processes. One port per worker. Members join the room named in the handshake query.
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { peerFlags, PeerRooms, fixedTick, toMsg } from './peer-common.mjs';

const o = peerFlags();
const rooms = new PeerRooms();
const server = createServer((req, res) => {
  const m = /^\/v1\/rooms\/([^/]+)\/messages$/.exec(req.url ?? '');
  if (req.method === 'POST' && m) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const msg = toMsg(Buffer.concat(chunks).toString());
      if (typeof msg === 'string') return void res.writeHead(400).end(JSON.stringify({ error: { code: 'BAD_REQUEST', message: msg } }));
      if (o.index !== 0) return void res.writeHead(421).end('{"error":{"code":"MISDIRECTED","message":"post to worker 0"}}');
      rooms.push(decodeURIComponent(m[1]), msg);
      res.writeHead(202, { 'Content-Type': 'application/json' }).end('{}');
    });
    return;
  }
  if (req.url === '/seqs') return void res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(Object.fromEntries(rooms.seqs)));
  if (req.url === '/healthz') return void res.end('ok');
  if (!req.url?.startsWith('/socket.io/')) res.writeHead(404).end();
});
server.keepAliveTimeout = 60_000;
let adapter;
if (o.workers > 1) {
  const { Redis } = await import('ioredis');
  const { createAdapter } = await import('@socket.io/redis-streams-adapter');
  adapter = createAdapter(new Redis(o.redis, { protocol: 2 }), { blockTimeInMs: 1000 });
}
const io = new Server(server, {
  transports: ['websocket'],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  maxHttpBufferSize: 16 * 1024,
  ...(adapter ? { adapter } : {}),
});
io.on('connection', (socket) => {
  const room = String(socket.handshake.query.room ?? 'r');
  socket.join(room);
});
if (o.index === 0) {
  fixedTick(o.tickMs, () => {
    for (const b of rooms.take()) io.to(b.room).emit('batch', { room: b.room, epoch: 'peer', from: b.seq, to: b.seq, msgs: b.msgs });
  });
}
server.listen(o.port, o.host, () => console.log(JSON.stringify({ msg: 'peer listening', peer: 'sio', index: o.index, port: o.port })));
