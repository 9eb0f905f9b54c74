// Local membership (src/rooms/membership.ts) and each connection's RoomSet (src/rooms/room-set.ts):
// one room as a field, a Set from the second room on, back to the field when one is left;
// room counts kept without a per-room Set of members.
import { describe, expect, it } from 'vitest';
import { RoomSet } from '../src/rooms/room-set.js';
import { Membership } from '../src/rooms/membership.js';
import type { Credentials } from '../src/auth/tokens.js';
import type { Connection } from '../src/rooms/connection.js';

const conn = (uid: string): Connection => {
  const creds: Credentials = { uid, role: 'viewer', exp: Infinity };
  return { creds, compress: false, rooms: new RoomSet() } as unknown as Connection;
};

describe('RoomSet', () => {
  it('answers like a Set through one room, two rooms, leaving one and leaving all', () => {
    const s = new RoomSet();
    expect([s.size, s.has('a'), [...s], s.delete('a')]).toEqual([0, false, [], false]);
    expect(s.add('a')).toBe(s);
    s.add('a');
    expect([s.size, s.has('a'), s.has('b'), [...s]]).toEqual([1, true, false, ['a']]);
    s.add('b').add('c');
    expect([s.size, [...s].sort(), s.has('b')]).toEqual([3, ['a', 'b', 'c'], true]);
    expect(s.delete('x')).toBe(false);
    expect([s.delete('a'), s.delete('c')]).toEqual([true, true]);
    expect([s.size, [...s], s.has('b'), s.has('a')]).toEqual([1, ['b'], true, false]);
    s.add('d'); // one field to a Set again
    expect([...s].sort()).toEqual(['b', 'd']);
    expect([s.delete('b'), s.delete('d'), s.delete('d')]).toEqual([true, true, false]);
    expect([s.size, [...s], s.has('d')]).toEqual([0, [], false]);
  });

  it('passes for a ReadonlySet: copies, entries, keys, forEach', () => {
    const s = new RoomSet().add('a').add('b');
    expect(new Set(s)).toEqual(new Set(['a', 'b']));
    expect([...s.entries()]).toEqual([['a', 'a'], ['b', 'b']]);
    expect([...s.keys()]).toEqual(['a', 'b']);
    const seen: string[] = [];
    s.forEach((r, r2, set) => seen.push(`${r}=${r2}:${set === s}`));
    expect(seen).toEqual(['a=a:true', 'b=b:true']);
    const one = new RoomSet().add('x');
    expect([[...one.entries()], [...one.keys()]]).toEqual([[['x', 'x']], ['x']]);
  });

  it('can be emptied while it is iterated, as a Set can (leaving every room on close)', () => {
    for (const rooms of [['a'], ['a', 'b'], ['a', 'b', 'c']]) {
      const s = new RoomSet();
      for (const r of rooms) s.add(r);
      const left: string[] = [];
      for (const r of s) {
        s.delete(r);
        left.push(r);
      }
      expect(left).toEqual(rooms);
      expect(s.size).toBe(0);
    }
  });
});

describe('Membership', () => {
  it('counts local members per room, tells the observer once per change, and reports emptied rooms', () => {
    const events: string[] = [];
    const m = new Membership({ joined: (room, uid) => events.push(`+${room}:${uid}`), left: (room, uid) => events.push(`-${room}:${uid}`) });
    const a = conn('a');
    const b = conn('b');
    m.addConnection(a);
    m.addConnection(b);
    expect(m.join(a, 'r1')).toBe(true);
    expect(m.join(a, 'r1')).toBe(false); // again: no change
    expect(m.join(b, 'r1')).toBe(false);
    expect(m.join(a, 'r2')).toBe(true);
    expect([m.count('r1'), m.count('r2'), m.count('none'), m.roomCount]).toEqual([2, 1, 0, 2]);
    expect(m.counts()).toEqual(new Map([['r1', 2], ['r2', 1]]));
    expect([...a.rooms].sort()).toEqual(['r1', 'r2']);
    expect(m.leave(b, 'r2')).toBe(false); // not in it
    expect(m.leave(b, 'r1')).toBe(false); // a is still there
    expect([m.count('r1'), b.rooms.size]).toEqual([1, 0]);
    expect(m.removeConnection(a).sort()).toEqual(['r1', 'r2']);
    expect([m.has('r1'), m.has('r2'), m.roomCount, a.rooms.size, m.connectionCount]).toEqual([false, false, 0, 0, 1]);
    expect(events).toEqual(['+r1:a', '+r1:b', '+r2:a', '-r1:b', '-r1:a', '-r2:a']);
  });

  it('finds a user by uid through one connection or several, and lists every connection', () => {
    const m = new Membership();
    const [a1, a2, b] = [conn('a'), conn('a'), conn('b')];
    for (const c of [a1, a2, b]) m.addConnection(c);
    expect(m.connectionsOf('a')).toEqual([a1, a2]);
    expect([...m.all()]).toHaveLength(3);
    for (const c of [a1, a2, b]) expect([...m.all()]).toContain(c);
    m.removeConnection(a1);
    expect(m.connectionsOf('a')).toEqual([a2]);
    expect(m.connectionsOf('b')).toEqual([b]);
    expect(m.connectionsOf('c')).toEqual([]);
    const left = [...m.all()];
    expect(left).toHaveLength(2);
    expect(left[0]).toBe(a2);
    expect(left[1]).toBe(b);
  });
});
