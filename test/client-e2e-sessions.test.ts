// The SDK against a real node with short-lived tokens (PROTOCOL §9): connect({ getToken })
// keeps one connection authorised across several token lifetimes by sending `refresh`, and
// after a 4010 (the refresh failed) reconnects with a fresh token by itself.
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type StateEvent } from '../src/client/index.js';
import type { RoomcastNode } from '../src/node.js';
import { startTestNode } from './helpers.js';
import { craftJwt, metric, nowSec, uniq } from './ws-helpers.js';

const SECRET = 'sdk-sessions-secret-0123456789abcdef';
const mint = (sub: string, ttlSec: number) => craftJwt({ alg: 'HS256', typ: 'JWT' }, { sub, exp: nowSec() + ttlSec }, SECRET);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SDK sessions end to end (Node)', () => {
  let node: RoomcastNode;
  beforeAll(async () => {
    node = await startTestNode({ secret: SECRET, tickMs: 20, tokenGraceSec: 1 });
  });
  afterAll(() => node.stop());

  it('refreshes before expiry: one connection outlives several 3-second tokens and keeps chatting', async () => {
    const uid = uniq('sdk');
    let minted = 0;
    const rc = connect({ url: `ws://127.0.0.1:${node.port}/ws`, WebSocket, getToken: () => (minted++, mint(uid, 3)) });
    const states: StateEvent[] = [];
    rc.on('state', (s) => states.push(s));
    await rc.ready();
    const sid = rc.info!.sid;
    const room = uniq('room');
    await rc.join(room);
    const before = await metric(node.port, 'roomcast_token_refreshes_total', { result: 'ok' });
    await sleep(7000);
    expect(rc.state).toBe('open');
    expect(rc.info!.sid).toBe(sid);
    expect(states.filter((s) => s.state === 'reconnecting')).toEqual([]);
    expect(minted).toBeGreaterThanOrEqual(3);
    expect(await metric(node.port, 'roomcast_token_refreshes_total', { result: 'ok' })).toBeGreaterThanOrEqual(before + 2);
    expect(await rc.send(room, 'still authorised')).toMatchObject({ shown: true });
    await rc.close();
  });

  it('reconnects after 4010 with a fresh token when a refresh could not be made in time', async () => {
    const uid = uniq('sdk4010');
    let failing = false;
    let minted = 0;
    const rc = connect({
      url: `ws://127.0.0.1:${node.port}/ws`,
      WebSocket,
      getToken: () => {
        if (failing) throw new Error('token service down');
        minted++;
        return mint(uid, 2);
      },
    });
    await rc.ready();
    const sid = rc.info!.sid;
    failing = true; // the refresh on `expiring` fails: the server closes with 4010
    const closed = new Promise<StateEvent>((resolve) =>
      rc.on('state', (s) => {
        if (s.closeCode !== 4010) return;
        failing = false; // the token service is back before the reconnect
        resolve(s);
      }),
    );
    expect(await closed).toMatchObject({ state: 'reconnecting', closeCode: 4010 });
    await rc.ready();
    await expect.poll(() => rc.state === 'open' && rc.info!.sid !== sid, { timeout: 5000 }).toBe(true);
    expect(minted).toBe(2);
    await rc.close();
  });
});
