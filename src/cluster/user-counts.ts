// Per-user limits that hold per node. Each worker counts its own sockets per user and sends
// the changes to the supervisor (batched); the supervisor tells every worker how many sockets
// the user has on the *other* workers, but only for users with at least `shareFrom` sockets
// on the node, so the common single-socket user costs no IPC beyond its own open and close.
// A worker then checks --max-conns-per-user against the node-wide count and gives the user
// its share of the chat, like and join limits: its part of the user's sockets.
import type { LocalCount, UserPresence } from '../engine/users.js';

/** Worker -> supervisor: socket count changes per user since the last flush. */
export interface UserDeltas {
  type: 'users';
  deltas: Array<[uid: string, delta: number]>;
}

/** Supervisor -> worker: the user's sockets on the node's other workers (0 = forget). */
export interface UserOthers {
  type: 'user-others';
  others: Array<[uid: string, count: number]>;
}

const FLUSH_MS = 20;

/** A worker's view: its own sockets exactly, the others' as last told by the supervisor. */
export class WorkerUsers implements UserPresence {
  private readonly remote = new Map<string, number>();
  private pending = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  /** `local`: the engine's own count of the user's sockets here (a map of our own was ~54 bytes per member). */
  constructor(
    private readonly send: (m: UserDeltas) => void,
    private readonly local: LocalCount,
  ) {}

  opened(uid: string): void {
    this.change(uid, 1);
  }

  closed(uid: string): void {
    this.change(uid, -1);
  }

  count(uid: string): number {
    return this.local(uid) + (this.remote.get(uid) ?? 0);
  }

  share(uid: string): number {
    const own = this.local(uid);
    const others = this.remote.get(uid) ?? 0;
    return others === 0 || own === 0 ? 1 : own / (own + others);
  }

  /** The supervisor's answer. */
  others(m: UserOthers): void {
    for (const [uid, n] of m.others) {
      if (n > 0) this.remote.set(uid, n);
      else this.remote.delete(uid);
    }
  }

  private change(uid: string, delta: number): void {
    this.pending.set(uid, (this.pending.get(uid) ?? 0) + delta);
    this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private flush(): void {
    this.timer = undefined;
    const deltas = [...this.pending].filter(([, d]) => d !== 0);
    this.pending = new Map();
    if (deltas.length > 0) this.send({ type: 'users', deltas });
  }
}

/**
 * One user's sockets on one worker, packed in a number (worker slot × SOCKETS_SPAN + sockets):
 * nearly every user is on one worker, and a Map per user held ~240 bytes per member in the
 * supervisor, ~240 MB at a million. A number stays a small integer up to 2,047 worker slots.
 */
const SOCKETS_SPAN = 1 << 20;

/** The supervisor's side: every worker's sockets per user. */
export class UserCountsHub {
  /** uid -> its sockets per worker: one worker's packed in a number, several in a Map (worker -> sockets) */
  private readonly counts = new Map<string, number | Map<string, number>>();
  /** Worker id -> its slot in the packed numbers, and back. */
  private readonly slotOf = new Map<string, number>();
  private readonly slotIds: string[] = [];
  /** uid -> worker -> the `others` it was last told (absent = 0) */
  private readonly told = new Map<string, Map<string, number>>();

  /**
   * `shareFrom`: users with fewer sockets on the node are not shared (a worker that was not
   * told counts no others, which is exact enough: it admits at most up to `shareFrom`).
   */
  constructor(
    private readonly shareFrom: number,
    private readonly workers: () => readonly string[],
    private readonly send: (worker: string, m: UserOthers) => void,
  ) {}

  apply(worker: string, m: UserDeltas): void {
    for (const [uid, d] of m.deltas) this.set(uid, worker, this.socketsOn(uid, worker) + d);
    this.tell(m.deltas.map(([uid]) => uid));
  }

  /** A worker exited: its sockets are gone. */
  dropWorker(worker: string): void {
    const touched: string[] = [];
    for (const uid of this.counts.keys()) {
      if (this.socketsOn(uid, worker) === 0) continue;
      touched.push(uid);
      this.set(uid, worker, 0);
    }
    for (const told of this.told.values()) told.delete(worker);
    this.tell(touched);
  }

  private socketsOn(uid: string, worker: string): number {
    const had = this.counts.get(uid);
    if (had === undefined) return 0;
    if (typeof had !== 'number') return had.get(worker) ?? 0;
    return this.workerOf(had) === worker ? had % SOCKETS_SPAN : 0;
  }

  private total(uid: string): number {
    const had = this.counts.get(uid);
    if (had === undefined) return 0;
    if (typeof had === 'number') return had % SOCKETS_SPAN;
    let n = 0;
    for (const c of had.values()) n += c;
    return n;
  }

  /** Sets the user's sockets on `worker` (≤ 0: none), packed again once one worker is left. */
  private set(uid: string, worker: string, sockets: number): void {
    const had = this.counts.get(uid);
    if (had === undefined || (typeof had === 'number' && this.workerOf(had) === worker)) {
      if (sockets > 0) this.counts.set(uid, this.pack(worker, sockets));
      else this.counts.delete(uid);
      return;
    }
    const per = typeof had === 'number' ? new Map([[this.workerOf(had), had % SOCKETS_SPAN]]) : had;
    if (sockets > 0) per.set(worker, sockets);
    else per.delete(worker);
    if (per.size > 1) return void this.counts.set(uid, per);
    const only = per.entries().next().value;
    if (only === undefined) this.counts.delete(uid);
    else this.counts.set(uid, this.pack(only[0], only[1]));
  }

  private workerOf(packed: number): string {
    return this.slotIds[Math.floor(packed / SOCKETS_SPAN)]!;
  }

  private pack(worker: string, sockets: number): number {
    let slot = this.slotOf.get(worker);
    if (slot === undefined) {
      slot = this.slotIds.push(worker) - 1;
      this.slotOf.set(worker, slot);
    }
    return slot * SOCKETS_SPAN + Math.min(sockets, SOCKETS_SPAN - 1);
  }

  private tell(uids: readonly string[]): void {
    const out = new Map<string, Array<[string, number]>>();
    const workers = this.workers();
    for (const uid of new Set(uids)) {
      const total = this.total(uid);
      let told = this.told.get(uid);
      if (total < this.shareFrom && !told) continue; // nobody was told about it: nothing to take back
      for (const w of workers) {
        const others = total >= this.shareFrom ? total - this.socketsOn(uid, w) : 0;
        if (others === (told?.get(w) ?? 0)) continue;
        if (!told) this.told.set(uid, (told = new Map()));
        if (others === 0) told.delete(w);
        else told.set(w, others);
        let list = out.get(w);
        if (!list) out.set(w, (list = []));
        list.push([uid, others]);
      }
      if (told?.size === 0) this.told.delete(uid);
    }
    for (const [w, others] of out) this.send(w, { type: 'user-others', others });
  }
}
