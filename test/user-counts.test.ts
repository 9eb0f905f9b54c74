// The supervisor's per-user socket counts (src/cluster/user-counts.ts), without processes:
// which workers are told what, and each worker's resulting count and share.
import { describe, expect, it } from 'vitest';
import { UserCountsHub, WorkerUsers, type UserOthers } from '../src/cluster/user-counts.js';

function node(workers: string[], shareFrom = 2) {
  const views = new Map<string, WorkerUsers>();
  const told: Array<[string, UserOthers]> = [];
  const hub = new UserCountsHub(shareFrom, () => [...views.keys()], (w, m) => {
    told.push([w, m]);
    views.get(w)!.others(m);
  });
  // Each worker's own sockets per user, as its engine's Membership would count them.
  for (const w of workers) {
    const local = new Map<string, number>();
    const view = new WorkerUsers((m) => hub.apply(w, m), (uid) => local.get(uid) ?? 0);
    const change = (uid: string, d: number) => local.set(uid, (local.get(uid) ?? 0) + d);
    views.set(w, Object.assign(view, {
      opened: (uid: string) => (change(uid, 1), WorkerUsers.prototype.opened.call(view, uid)),
      closed: (uid: string) => (change(uid, -1), WorkerUsers.prototype.closed.call(view, uid)),
    }));
  }
  const flush = () => new Promise((r) => setTimeout(r, 40));
  return { hub, views, told, flush, w: (id: string) => views.get(id)! };
}

describe('per-user socket counts across a node', () => {
  it('a single-socket user costs no message to the other workers', async () => {
    const n = node(['w0', 'w1', 'w2']);
    n.w('w0').opened('solo');
    await n.flush();
    expect(n.told).toEqual([]);
    expect(n.w('w1').count('solo')).toBe(0);
  });

  it('a user with sockets on two workers: every worker knows the node-wide count, each gets its share', async () => {
    const n = node(['w0', 'w1', 'w2']);
    for (let i = 0; i < 5; i++) n.w('w0').opened('u');
    for (let i = 0; i < 4; i++) n.w('w1').opened('u');
    await n.flush();
    expect([n.w('w0').count('u'), n.w('w1').count('u'), n.w('w2').count('u')]).toEqual([9, 9, 9]);
    expect(n.w('w0').share('u')).toBeCloseTo(5 / 9);
    expect(n.w('w1').share('u')).toBeCloseTo(4 / 9);
    n.hub.dropWorker('w1');
    expect(n.w('w0').share('u')).toBe(1);
    expect(n.w('w2').count('u')).toBe(5);
    for (let i = 0; i < 4; i++) n.w('w0').closed('u');
    await n.flush();
    expect(n.w('w2').count('u')).toBe(0); // below shareFrom: forgotten
  });

  it('a user whose sockets move between workers keeps exact node-wide counts', async () => {
    const n = node(['w0', 'w1', 'w2']);
    n.w('w0').opened('u');
    n.w('w0').opened('u');
    await n.flush();
    n.w('w1').opened('u'); // now on two workers
    await n.flush();
    expect([n.w('w0').count('u'), n.w('w1').count('u'), n.w('w2').count('u')]).toEqual([3, 3, 3]);
    n.w('w0').closed('u');
    n.w('w0').closed('u'); // one worker again (w1)
    await n.flush();
    expect(n.w('w2').count('u')).toBe(0); // below shareFrom: forgotten
    n.w('w2').opened('u');
    n.w('w2').opened('u');
    await n.flush();
    expect([n.w('w0').count('u'), n.w('w1').count('u'), n.w('w2').count('u')]).toEqual([3, 3, 3]);
    expect(n.w('w2').share('u')).toBeCloseTo(2 / 3);
    n.hub.dropWorker('w2');
    expect(n.w('w0').count('u')).toBe(0);
    n.w('w0').opened('u');
    await n.flush();
    expect([n.w('w0').count('u'), n.w('w1').count('u')]).toEqual([2, 2]);
  });
});
