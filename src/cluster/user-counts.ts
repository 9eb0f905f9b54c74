// Per-user limits that hold per node. Each worker counts its own sockets per user and sends
// the changes to the supervisor (batched); the supervisor tells every worker how many sockets
// the user has on the *other* workers, but only for users with at least `shareFrom` sockets
// on the node, so the common single-socket user costs no IPC beyond its own open and close.
// A worker then checks --max-conns-per-user against the node-wide count and gives the user
// its share of the chat, like and join limits: its part of the user's sockets.
import type { UserPresence } from '../engine/users.js';

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
  private readonly local = new Map<string, number>();
  private readonly remote = new Map<string, number>();
  private pending = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly send: (m: UserDeltas) => void) {}

  opened(uid: string): void {
    this.change(uid, 1);
  }

  closed(uid: string): void {
    this.change(uid, -1);
  }

  count(uid: string): number {
    return (this.local.get(uid) ?? 0) + (this.remote.get(uid) ?? 0);
  }

  share(uid: string): number {
    const own = this.local.get(uid) ?? 0;
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
    const n = (this.local.get(uid) ?? 0) + delta;
    if (n > 0) this.local.set(uid, n);
    else this.local.delete(uid);
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

/** The supervisor's side: every worker's sockets per user. */
export class UserCountsHub {
  /** uid -> worker -> sockets */
  private readonly counts = new Map<string, Map<string, number>>();
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
    for (const [uid, d] of m.deltas) {
      let per = this.counts.get(uid);
      if (!per) this.counts.set(uid, (per = new Map()));
      const n = (per.get(worker) ?? 0) + d;
      if (n > 0) per.set(worker, n);
      else per.delete(worker);
      if (per.size === 0) this.counts.delete(uid);
    }
    this.tell(m.deltas.map(([uid]) => uid));
  }

  /** A worker exited: its sockets are gone. */
  dropWorker(worker: string): void {
    const touched: string[] = [];
    for (const [uid, per] of this.counts) {
      if (!per.delete(worker)) continue;
      touched.push(uid);
      if (per.size === 0) this.counts.delete(uid);
    }
    for (const told of this.told.values()) told.delete(worker);
    this.tell(touched);
  }

  private tell(uids: readonly string[]): void {
    const out = new Map<string, Array<[string, number]>>();
    const workers = this.workers();
    for (const uid of new Set(uids)) {
      const per = this.counts.get(uid);
      let total = 0;
      for (const n of per?.values() ?? []) total += n;
      let told = this.told.get(uid);
      if (total < this.shareFrom && !told) continue; // nobody was told about it: nothing to take back
      for (const w of workers) {
        const others = total >= this.shareFrom ? total - (per?.get(w) ?? 0) : 0;
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
