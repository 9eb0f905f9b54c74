// The gateway's intrusive list of open sockets (src/gateway/socket-list.ts).
import { describe, expect, it } from 'vitest';
import { SocketList } from '../src/gateway/socket-list.js';

class S {
  prev: S | undefined = undefined;
  next: S | undefined = undefined;
  constructor(readonly id: number) {}
}

const ids = (l: SocketList<S>) => [...l].map((s) => s.id);

describe('SocketList', () => {
  it('adds, deletes anywhere, and counts', () => {
    const l = new SocketList<S>();
    const [a, b, c, d] = [1, 2, 3, 4].map((i) => new S(i)) as [S, S, S, S];
    for (const s of [a, b, c, d]) l.add(s);
    expect(ids(l)).toEqual([4, 3, 2, 1]);
    l.delete(b); // middle
    expect(ids(l)).toEqual([4, 3, 1]);
    l.delete(d); // head
    expect(ids(l)).toEqual([3, 1]);
    l.delete(a); // tail
    expect(ids(l)).toEqual([3]);
    expect(l.size).toBe(1);
    l.delete(c);
    expect(ids(l)).toEqual([]);
    expect(l.size).toBe(0);
  });

  it('leaves a socket that is not in it alone, and deleting twice counts once', () => {
    const l = new SocketList<S>();
    const a = new S(1);
    const stranger = new S(2);
    l.add(a);
    l.delete(stranger);
    expect(l.size).toBe(1);
    l.delete(a);
    l.delete(a);
    expect(l.size).toBe(0);
    expect(ids(l)).toEqual([]);
  });

  it('walks on when the current socket is deleted during the walk', () => {
    const l = new SocketList<S>();
    for (let i = 1; i <= 5; i++) l.add(new S(i));
    const seen: number[] = [];
    for (const s of l) {
      seen.push(s.id);
      l.delete(s);
    }
    expect(seen).toEqual([5, 4, 3, 2, 1]);
    expect(l.size).toBe(0);
  });
});
