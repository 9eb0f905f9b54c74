#!/usr/bin/env node
// A reconnect wave after an outage (a deploy, a network blip): --members members of one room on
// one roomcast worker (in-memory bus) leave, --entries server messages of --bytes each are posted
// meanwhile, and all of them come back at once with `since`, each getting the replay of what it
// missed. Reads the worker's RSS with the members connected before they left and again after the
// wave: uWS keeps a backlog buffer, for the socket's life, the size of any frame over its 16 KiB
// cork buffer it wrote, so replay frame size decides what a wave leaves behind.
import WebSocket from 'ws';
import { decode } from '@msgpack/msgpack';
import { parseFlags, main, log, sleep, writeResult, needBuild, commandLine } from './lib/common.mjs';
import { startTarget, http, SECRET, API_KEY } from './lib/targets.mjs';
import { mintToken } from './lib/token.mjs';
import { totalRss } from './lib/proc.mjs';

const f = parseFlags(
  {
    members: { type: 'number', default: 5000, help: 'members that leave and come back (one process: ≤ ~9k, server and clients share the open-file cap)' },
    entries: { type: 'number', default: 40, help: 'server messages posted while they are away (one log entry each)' },
    bytes: { type: 'number', default: 1000, help: 'body size of each message' },
    batch: { type: 'number', default: 500, help: 'connects started at once, in the first connect and in the wave' },
    settleS: { type: 'number', default: 10, help: 'idle seconds before each RSS reading' },
    label: { type: 'string', default: '', help: 'label stored with the results' },
  },
  undefined,
  'node bench/recovery-wave.mjs [flags]   (npm run build first)',
);

const ROOM = 'wave';

/** Connects member `i`; resolves with its socket and state once `joined` came. */
function connect(port, i, query, onBatch) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${mintToken(SECRET, `m${i}`)}&room=${ROOM}${query}`, { perMessageDeflate: false });
    const m = { ws, joined: undefined, frames: 0, to: -1 };
    ws.on('message', (data) => {
      const op = decode(data);
      if (op.op === 'joined') {
        m.joined = op;
        resolve(m);
      } else if (op.op === 'batch') {
        m.frames++;
        m.to = Math.max(m.to, op.to);
        onBatch?.(m);
      }
    });
    ws.once('error', reject);
    ws.once('close', (code) => m.joined === undefined && reject(new Error(`closed ${code} before joined`)));
  });
}

async function inBatches(n, size, fn) {
  const out = [];
  for (let i = 0; i < n; i += size) out.push(...(await Promise.all(Array.from({ length: Math.min(size, n - i) }, (_, k) => fn(i + k)))));
  return out;
}

main(async () => {
  await needBuild();
  const target = await startTarget('roomcast', { workers: 1 });
  const port = target.urls[0].port;
  const rss = () => totalRss(target.pids()) / 2 ** 20;
  await sleep(f.settleS * 1000);
  const empty = rss();
  const stay = await connect(port, f.members, ''); // keeps the room followed while the others are away
  const first = await inBatches(f.members, f.batch, (i) => connect(port, i, ''));
  await sleep(f.settleS * 1000);
  const connected = rss();
  log(`${f.members} members connected: RSS ${empty.toFixed(1)} → ${connected.toFixed(1)} MiB`);
  for (const m of first) m.ws.close();
  const body = 'y'.repeat(f.bytes);
  let head = 0;
  for (let i = 0; i < f.entries; i++) {
    const r = await http('POST', `${target.apiBase}/v1/rooms/${ROOM}/messages`, {
      body: JSON.stringify({ kind: 'system', body }),
      headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
    });
    if (r.status !== 202) throw new Error(`post: ${r.status} ${r.text}`);
    head = JSON.parse(r.text).seq;
  }
  await sleep(f.settleS * 1000);
  const away = rss();
  log(`away, ${f.entries} entries of ${f.bytes} bytes posted (head ${head}): RSS ${away.toFixed(1)} MiB`);

  let caughtUp = 0;
  let allIn;
  const done = new Promise((resolve) => (allIn = resolve));
  const onBatch = (m) => {
    if (m.to >= head && !m.done) {
      m.done = true;
      if (++caughtUp === f.members) allIn();
    }
  };
  const t0 = performance.now();
  const wave = await inBatches(f.members, f.batch, (i) => {
    const j = first[i].joined;
    return connect(port, i, `&since=${j.seq}&epoch=${encodeURIComponent(j.epoch)}`, onBatch);
  });
  const recovered = wave.filter((m) => m.joined.recovered === true).length;
  await Promise.race([done, sleep(120_000)]);
  const waveMs = performance.now() - t0;
  if (caughtUp < f.members) throw new Error(`only ${caughtUp} of ${f.members} members caught up to ${head} within 120 s`);
  await sleep(f.settleS * 1000);
  const after = rss();
  const frames = wave.reduce((n, m) => n + m.frames, 0) / f.members;
  const growthKiB = ((after - connected) * 1024) / f.members;
  log(`wave: ${recovered}/${f.members} recovered in ${waveMs.toFixed(0)} ms, ${frames.toFixed(1)} replay frames each; RSS ${after.toFixed(1)} MiB, ${growthKiB.toFixed(1)} KiB per member over connected`);
  for (const m of [...wave, stay]) m.ws.close();
  await target.stop();
  const file = writeResult('recovery-wave', {
    command: commandLine('recovery-wave'),
    label: f.label,
    flags: f,
    head,
    recovered,
    waveMs: Math.round(waveMs),
    framesPerMember: +frames.toFixed(2),
    rssMiB: { empty: +empty.toFixed(1), connected: +connected.toFixed(1), away: +away.toFixed(1), after: +after.toFixed(1) },
    growthPerMemberKiB: +growthKiB.toFixed(2),
  });
  log(`results: ${file}`);
}, 10 * 60_000);
