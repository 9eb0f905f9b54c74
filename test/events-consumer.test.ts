// The example consumer in docs/events-consumer.mjs, run as its own process against a live
// node: it verifies the signature of every batch and archives the logged messages to a file.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RoomcastNode } from '../src/node.js';
import { API_KEY, SECRET, startTestNode } from './helpers.js';
import { eventually, postShown } from './api-helpers.js';
import { member, request, uniq } from './ws-helpers.js';

const EV_SECRET = 'events-secret-0123456789';
const CONSUMER = fileURLToPath(new URL('../docs/events-consumer.mjs', import.meta.url));

describe('docs/events-consumer.mjs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'roomcast-archive-'));
  const archive = join(dir, 'archive.jsonl');
  let proc: ChildProcess;
  let port: number;
  let node: RoomcastNode;
  beforeAll(async () => {
    proc = spawn(process.execPath, [CONSUMER], { env: { ...process.env, PORT: '0', ARCHIVE: archive, ROOMCAST_EVENTS_SECRET: EV_SECRET }, stdio: ['ignore', 'pipe', 'inherit'] });
    port = await new Promise<number>((resolve, reject) => {
      proc.stdout!.on('data', (d: Buffer) => {
        const m = /listening on (\d+)/.exec(d.toString());
        if (m) resolve(Number(m[1]));
      });
      proc.once('exit', (code) => reject(new Error(`consumer exited (${code})`)));
    });
    node = await startTestNode({ apiKey: API_KEY, secret: SECRET, tickMs: 20, eventsFlushMs: 50, eventsUrl: `http://127.0.0.1:${port}/`, eventsSecret: EV_SECRET });
  });
  afterAll(async () => {
    await node?.stop();
    proc?.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('archives every logged entry of a room, in order, from signed batches only', async () => {
    const room = uniq('show');
    const m = await member(node, 'viewer', room);
    const ack = await request(m.c, { op: 'send', room, kind: 'chat', body: 'first!' });
    const gift = await postShown(node, room, { kind: 'gift', body: { item: 'rocket' }, uid: 'fan' });
    const lines = () => (existsSync(archive) ? readFileSync(archive, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : []);
    await eventually(() => lines().filter((e) => e.room === room).length === 2, 5000, 'archived entries');
    const mine = lines().filter((e) => e.room === room);
    expect(mine.map((e) => e.seq)).toEqual([ack.seq, gift]);
    expect(mine[0]).toMatchObject({ type: 'message.appended', epoch: m.joined.epoch, msgs: [{ u: 'viewer', b: 'first!' }] });
    expect(mine[1]).toMatchObject({ msgs: [{ u: 'fan', k: 'gift', b: { item: 'rocket' } }] });

    // A forged batch is refused and not archived.
    const forged = JSON.stringify({ id: 'x', node: 'evil', sentAt: 0, events: [{ type: 'message.appended', room, seq: 99, msgs: [] }] });
    const res = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: forged, headers: { 'x-roomcast-signature': 'sha256=00' } });
    expect(res.status).toBe(401);
    expect(lines().some((e) => e.seq === 99)).toBe(false);
    await m.c.close();
  });
});
