// A sender process: posts messages to the API at a controlled rate (round robin over
// rooms), keep-alive, a bounded number in flight (one connection each), through node:http or
// the leaner raw client (config.client 'raw'). API posts carry the API key, so no per-user
// chat limit applies; the room's budget and --api-rate still do.
import { Agent, request } from 'node:http';
import { Hist } from './hist.mjs';
import { RawPool } from './raw-http.mjs';

let C;
let agent;
let pool;
let timer;
let credit = 0;
let inflight = 0;
let n = 0;
let stopAt = 0;
const W = { sent: 0, ok: 0, shown: 0, hidden: 0, behind: 0, status: {}, errors: {} };
const rtt = new Hist();
let windowAt = performance.now();

function post() {
  const room = C.rooms[n % C.rooms.length];
  const kind = C.kinds[n % C.kinds.length];
  const body = JSON.stringify({
    kind,
    body: `m${n} ${C.pad}`,
    uid: `sender${n % 97}`,
    ...(C.priority ? { priority: C.priority } : {}),
  });
  n++;
  if (pool) return postRaw(room, body);
  inflight++;
  W.sent++;
  const t0 = performance.now();
  const req = request(
    {
      agent,
      host: C.host,
      port: C.port,
      method: 'POST',
      path: `/v1/rooms/${encodeURIComponent(room)}/messages`,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...(C.apiKey ? { Authorization: `Bearer ${C.apiKey}` } : {}) },
    },
    (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => answered(t0, res.statusCode, Buffer.concat(chunks).toString()));
    },
  );
  req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
  req.on('error', (err) => failed(err));
  req.end(body);
}

function postRaw(room, body) {
  const t0 = performance.now();
  const auth = C.apiKey ? `Authorization: Bearer ${C.apiKey}\r\n` : '';
  const sent = pool.post(`/v1/rooms/${encodeURIComponent(room)}/messages`, `Content-Type: application/json\r\n${auth}`, body, (err, status, text) =>
    err ? failed(err) : answered(t0, status, text),
  );
  if (!sent) return void W.behind++; // every connection busy
  inflight++;
  W.sent++;
}

function answered(t0, s, text) {
  inflight--;
  rtt.record(performance.now() - t0);
  W.status[s] = (W.status[s] ?? 0) + 1;
  if (s >= 200 && s < 300) {
    W.ok++;
    if (text.includes('"shown":false')) W.hidden++;
    else W.shown++;
  }
}

function failed(err) {
  inflight--;
  W.errors[err.message] = (W.errors[err.message] ?? 0) + 1;
}

function start() {
  clearInterval(timer);
  credit = 0;
  let last = performance.now();
  timer = setInterval(() => {
    const now = performance.now();
    credit += (C.rate * (now - last)) / 1000;
    last = now;
    if (stopAt && Date.now() > stopAt) {
      clearInterval(timer);
      return;
    }
    while (credit >= 1) {
      if (inflight >= C.maxInflight) {
        // the server is slower than the asked rate: count what could not be sent, don't queue
        W.behind += Math.floor(credit);
        credit -= Math.floor(credit);
        break;
      }
      credit--;
      post();
    }
  }, 5);
}

process.on('message', (m) => {
  const reply = (d) => process.send?.({ id: m.id, ...d });
  if (m.type === 'start') {
    C = { maxInflight: 256, kinds: ['chat'], bodyBytes: 24, ...m.config };
    C.pad = 'x'.repeat(Math.max(1, C.bodyBytes - 8));
    if (C.client === 'raw') pool = new RawPool({ host: C.host, port: C.port, max: C.maxInflight });
    else agent = new Agent({ keepAlive: true, maxSockets: C.maxInflight, maxFreeSockets: C.maxInflight }); // no reconnect churn
    stopAt = C.maxMs ? Date.now() + C.maxMs : 0;
    if (C.rate > 0) start();
    reply({ ok: true });
  } else if (m.type === 'rate') {
    Object.assign(C, m.config);
    C.pad = 'x'.repeat(Math.max(1, C.bodyBytes - 8));
    if (C.rate > 0) start();
    else clearInterval(timer);
    reply({ ok: true });
  } else if (m.type === 'window') {
    const now = performance.now();
    const out = { ...structuredClone(W), inflight, rtt: rtt.summary(), rttHist: rtt.toJSON(), windowMs: now - windowAt };
    if (m.reset) {
      windowAt = now;
      Object.assign(W, { sent: 0, ok: 0, shown: 0, hidden: 0, behind: 0, status: {}, errors: {} });
      rtt.reset();
    }
    reply(out);
  } else if (m.type === 'drain') {
    const t0 = Date.now();
    const check = () => (inflight === 0 || Date.now() - t0 > (m.timeoutMs ?? 15_000) ? reply({ inflight }) : setTimeout(check, 20));
    check();
  } else if (m.type === 'stop') {
    clearInterval(timer);
    reply({ ok: true });
    setTimeout(() => process.exit(0), 100);
  }
});
process.on('disconnect', () => process.exit(0));
setTimeout(() => process.exit(4), Number(process.env.SENDER_MAX_MS ?? 3_600_000)).unref();
