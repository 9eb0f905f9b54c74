// Helpers for the issue-14 abuse tests (test/security-*.test.ts): a WebSocket client with tiny
// socket buffers that sends but does not read, as the reported attacks did.
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { encode } from '@msgpack/msgpack';

// Node cannot shrink a socket's buffers (a paused Node socket on loopback soaks up megabytes),
// so the non-reading client lives in python3 with a 4 KiB receive buffer and a 536-byte MSS.
const NON_READER_PY = String.raw`
import json, os, select, socket, struct, sys, time
cfg = json.loads(sys.stdin.readline())
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
s.settimeout(20)
s.connect(('127.0.0.1', cfg['port']))
s.sendall(('GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
           'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n' % cfg['path']).encode())
buf = b''
while b'\r\n\r\n' not in buf:
    d = s.recv(1)
    if not d:
        print(json.dumps({'error': 'closed during the upgrade'}), flush=True)
        sys.exit(0)
    buf += d
if not buf.startswith(b'HTTP/1.1 101'):
    print(json.dumps({'error': buf[:60].decode('latin1')}), flush=True)
    sys.exit(0)

def frame(payload):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x82]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack('>H', n))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

sent = 0
broken = False
try:
    for hexframe, count in cfg['burst']:
        data = frame(bytes.fromhex(hexframe)) * count
        s.sendall(data)
        sent += count
    end = time.time() + cfg['holdMs'] / 1000.0
    keep = frame(bytes.fromhex(cfg['keepalive'])) if cfg.get('keepalive') else None
    every = (cfg.get('keepaliveMs') or 1000) / 1000.0
    while time.time() < end:
        time.sleep(min(every, max(0.0, end - time.time())))
        if keep and time.time() < end:
            s.sendall(keep)
except OSError:
    broken = True

# Now read everything the server kept for us, then report.
ops = {}
close_code = None
data = b''
eof = False
s.settimeout(cfg.get('readMs', 3000) / 1000.0)
try:
    while True:
        d = s.recv(65536)
        if not d:
            eof = True
            break
        data += d
except ConnectionResetError:
    eof = True  # closed with unsent data: a reset
except OSError:
    pass
i = 0
while i + 2 <= len(data):
    op = data[i] & 0x0f
    n = data[i + 1] & 0x7f
    j = i + 2
    if n == 126:
        n = struct.unpack('>H', data[j:j + 2])[0]; j += 2
    elif n == 127:
        n = struct.unpack('>Q', data[j:j + 8])[0]; j += 8
    if j + n > len(data):
        break
    p = data[j:j + n]
    if op == 8:
        close_code = struct.unpack('>H', p[:2])[0] if len(p) >= 2 else 1005
    elif op == 2 and len(p) > 5 and p[1:4] == b'\xa2op':
        name = p[5:5 + (p[4] & 0x1f)].decode('latin1')
        ops[name] = ops.get(name, 0) + 1
    i = j + n
print(json.dumps({'sent': sent, 'broken': broken, 'ops': ops, 'closeCode': close_code, 'eof': eof, 'bytes': len(data)}), flush=True)
`;

export interface NonReaderOptions {
  port: number;
  /** Request path with query, e.g. `/ws?token=…`. */
  path: string;
  /** Client ops sent right after the upgrade, each repeated `count` times. */
  burst: Array<[Record<string, unknown>, number]>;
  /** How long to keep not reading after the burst. */
  holdMs: number;
  /** Sent every `keepaliveMs` while holding, so the idle timeout never fires. */
  keepalive?: Record<string, unknown>;
  keepaliveMs?: number;
}

export interface NonReaderResult {
  sent: number;
  /** The socket broke while sending (the server closed it). */
  broken: boolean;
  /** Server frames by op, read after holding. */
  ops: Record<string, number>;
  /** The close code the server sent, if any (a server closing a backed-up socket may not manage to send one). */
  closeCode: number | null;
  /** The server closed (or reset) the connection: seen when reading after holding. */
  eof: boolean;
  error?: string;
}

/** Runs one non-reading client to completion (python3 is required; see hasPython()). */
export function nonReader(o: NonReaderOptions): Promise<NonReaderResult> {
  const hex = (v: Record<string, unknown>) => Buffer.from(encode(v)).toString('hex');
  const cfg = {
    port: o.port,
    path: o.path,
    burst: o.burst.map(([op, n]) => [hex(op), n]),
    holdMs: o.holdMs,
    keepalive: o.keepalive ? hex(o.keepalive) : undefined,
    keepaliveMs: o.keepaliveMs,
  };
  return new Promise((resolve, reject) => {
    const proc = spawn('python3', ['-c', NON_READER_PY], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.on('exit', () => {
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as NonReaderResult);
      } catch {
        reject(new Error(`non-reader failed: ${out} ${err}`));
      }
    });
    proc.stdin.end(JSON.stringify(cfg) + '\n');
  });
}

/** Writes `request` on a fresh TCP connection; collects every byte until the server closes or `timeoutMs`. */
export function rawExchange(port: number, request: string, timeoutMs = 3000): Promise<{ text: string; closed: boolean; statuses: number[] }> {
  return new Promise((resolve) => {
    const s = createConnection({ port, host: '127.0.0.1' });
    let text = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ text, closed, statuses: [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1])) });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    s.write(request);
  });
}
