// A lean HTTP/1.1 keep-alive client for the API senders: one request in flight per connection,
// requests written as one string, responses read by Content-Length (chunked bodies are read to
// their last chunk). Several times cheaper per post than node:http, so at high rates the
// sender process leaves the CPU to the server it measures.
import { connect } from 'node:net';

const HEAD_END = '\r\n\r\n';

class Conn {
  constructor(pool) {
    this.pool = pool;
    this.buf = '';
    this.cb = null;
    this.t0 = 0;
    this.sock = connect({ host: pool.host, port: pool.port });
    this.sock.setNoDelay(true);
    this.sock.setEncoding('latin1');
    this.sock.on('data', (d) => this.onData(d));
    this.sock.on('error', (err) => this.fail(err.message));
    this.sock.on('close', () => this.fail('connection closed'));
  }

  send(req, cb) {
    this.cb = cb;
    this.t0 = performance.now();
    this.buf = '';
    this.sock.write(req);
  }

  onData(d) {
    this.buf += d;
    const h = this.buf.indexOf(HEAD_END);
    if (h < 0 || !this.cb) return;
    const head = this.buf.slice(0, h);
    const bodyAt = h + HEAD_END.length;
    let body;
    const len = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (len) {
      if (this.buf.length < bodyAt + Number(len[1])) return;
      body = this.buf.slice(bodyAt, bodyAt + Number(len[1]));
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      if (!this.buf.endsWith('0\r\n\r\n')) return;
      body = this.buf.slice(bodyAt);
    } else body = '';
    const cb = this.cb;
    this.cb = null;
    this.buf = '';
    this.pool.idle.push(this);
    cb(null, Number(head.slice(9, 12)), body);
  }

  fail(msg) {
    this.pool.drop(this);
    const cb = this.cb;
    this.cb = null;
    if (cb) cb(new Error(msg));
  }
}

export class RawPool {
  /** max: connections at most (= requests in flight); timeoutMs: a request's answer time limit. */
  constructor({ host, port, max, timeoutMs = 10_000 }) {
    Object.assign(this, { host, port, max, timeoutMs });
    this.idle = [];
    this.all = new Set();
    this.sweep = setInterval(() => {
      const now = performance.now();
      for (const c of this.all) if (c.cb && now - c.t0 > this.timeoutMs) c.sock.destroy(new Error('timeout'));
    }, 1000);
    this.sweep.unref();
  }

  /** False when every connection is busy (the caller counts it as behind). */
  post(path, headers, body, cb) {
    let c = this.idle.pop();
    while (c && c.sock.destroyed) c = this.idle.pop();
    if (!c) {
      if (this.all.size >= this.max) return false;
      c = new Conn(this);
      this.all.add(c);
    }
    c.send(`POST ${path} HTTP/1.1\r\nHost: ${this.host}\r\n${headers}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, cb);
    return true;
  }

  drop(c) {
    this.all.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
  }

  close() {
    clearInterval(this.sweep);
    for (const c of this.all) c.sock.destroy();
  }
}
