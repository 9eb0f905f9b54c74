// A worker's pipeline: (1) each tick applies each room's budget to its outbox and appends one
// log entry per room to the bus in one round trip, replying to senders when the append
// resolves; (2) what the bus delivers for each followed room is spliced from the entries'
// bytes into one `batch` frame (batch.ts), and handed to uWS publish as
// each bus read returns. A bus that reads at once after an append (`readsBack`: one Redis) brings
// this worker's own entries back with the other workers' of the moment, so a room gets one frame
// per tick, not one per appending worker; otherwise its own go out right after their append. With
// fan-out shards on (`fanoutShardMembers`), a big room's frame is written over several loop turns
// (gateway/room-fanout.ts); the room's next frame waits for it and takes everything delivered
// meanwhile, up to FRAME_MAX_BYTES (batch.ts; the rest is the frame after it): a pass that can't
// finish in a tick stretches the room's tick to the pass. A second pass in a row longer than the
// longest tick (`maxTickMs`) is followed by a rest of half its length, with or without shards, so
// an overloaded worker merges more per frame instead of passing back to back.
import type { Bus, EntryBody, LogEntry, PackedBody, RoomHead, AppendItem } from '../bus/bus.js';
import { packEntry } from '../bus/entry.js';
import { kindLabel, type MessageResult, type Metrics } from '../metrics/metrics.js';
import { WireError } from '../protocol/errors.js';
import type { Msg } from '../protocol/ops.js';
import { encodeBatch, frameLength } from './batch.js';
import type { RoomPublisher } from '../rooms/connection.js';
import type { Outboxes, Outcome, Pending, RoomOutbox } from './outbox.js';
import { sampleFairly } from './sampling.js';
import { TokenBucket } from '../util/token-bucket.js';
import { checkPhase } from '../util/loop-phase.js';
import { RateMeter } from './rate-meter.js';
import { RecentEntries } from './recent.js';

/** Content review of a tick's candidate chat (all rooms at once); returns the refused ones. */
export type Reviewer = (candidates: ReadonlyArray<{ room: string; msg: Msg }>) => Promise<ReadonlySet<number>>;

export interface PipelineOptions {
  bus: Pick<Bus, 'append' | 'readsBack'>;
  outboxes: Outboxes;
  publisher: RoomPublisher;
  metrics: Metrics;
  roomChatBudget: number;
  /** This worker's share (0..1] of a room's chat budget. */
  budgetShare: (room: string) => number;
  review?: Reviewer;
  /** Told of every entry this worker logged (business events); must not block. */
  events?: { appended(room: string, head: RoomHead, entry: EntryBody): void };
  onError?: (err: unknown) => void;
  /**
   * A pass (one frame written to every local member of a room) that took longer than this,
   * the longest tick, after one that did too, is followed by a rest before the room's next
   * frame (REST_PER_PASS_MS).
   * Default: no rest.
   */
  restAfterMs?: number;
  now?: () => number;
}

interface Candidate {
  room: string;
  p: Pending;
}

interface Inbox {
  epoch: string;
  entries: LogEntry[];
}

/** Fan-out time: from a first frame handed to publish until no pass is left unwritten. */
interface Fanning {
  started: number;
  cpu: NodeJS.CpuUsage;
  /** When the first frame's entries were in hand, and the oldest entry's append. */
  inHand: number;
  appended: number;
  /** Passes not written yet (plus one while a deliver step is publishing). */
  passes: number;
}

const BUDGET_IDLE_MS = 10_000;
/** Tick appends that may overlap: enough to ride out one slow round trip without queueing more. */
const MAX_APPENDS_IN_FLIGHT = 2;

/**
 * The rest after a pass longer than the longest tick (the second in a row), per ms of the pass:
 * the pass then takes two thirds of the room's frame interval. A worker that cannot write a frame to all its
 * members within a tick would otherwise pass back to back; resting, it merges what comes
 * meanwhile into the next frame and leaves a third of its loop (and of the box) to API
 * requests, acks, pongs and the members' own reading (bench/notes/million-curve.md, session 10).
 */
const REST_PER_PASS_MS = 0.5;

/**
 * How long an append's own entries wait for the bus to read them back (readsBack) before they
 * go out in a frame of their own: the read takes about three round trips (CLIENT UNBLOCK, the
 * blocked wait's end, XREAD), longer when a fan-out pass holds the loop.
 */
const READ_BACK_MS = 100;

export class TickPipeline {
  private readonly budgets = new Map<string, { budget: TokenBucket; used: number }>();
  private inbox = new Map<string, Inbox>();
  private readonly delivered = new Map<string, RoomHead>();
  /** Rooms whose last frame is still being written, or resting after it: their entries wait in the inbox and merge. */
  private readonly passing = new Set<string>();
  /** Rooms whose last pass was longer than `restAfterMs`. */
  private readonly longPassed = new Set<string>();
  /** The rests in progress, by room: settled() ends them early. */
  private readonly resting = new Map<string, { timer: NodeJS.Timeout; end: () => void }>();
  private fanning: Fanning | undefined;
  /** Chat waiting for the next webhook call, the call in flight, and what it let through. */
  private underReview: Candidate[] = [];
  private reviewing: Promise<void> | undefined;
  private passedReview: Candidate[] = [];
  private readonly appending = new Set<Promise<void>>();
  /** Appends waiting for the bus to read their own entries back: the next delivered read ends them. */
  private readonly readingBack = new Set<() => void>();
  private fanoutMs = 0;
  private readonly now: () => number;
  /** Messages per second per room: from the log for followed rooms, else from local appends. */
  readonly rates: RateMeter;
  /** Each followed room's last entries as delivered, for joins with `last`. */
  readonly recent = new RecentEntries();

  constructor(private readonly o: PipelineOptions) {
    this.now = o.now ?? Date.now;
    this.rates = new RateMeter(this.now);
  }

  /**
   * One tick: starts the append of what the outboxes hold (one round trip); this worker's own
   * entries are published with the bus read that brings them back (readsBack, within
   * READ_BACK_MS), or else as the append resolves, after the replies it resolved. The tick's
   * own work is the synchronous part: the next tick may start while this append is in flight
   * (at most MAX_APPENDS_IN_FLIGHT; replies come back in order on the bus connection), so a slow
   * Redis round trip never stretches the tick; settled() waits for the appends. Other workers'
   * entries never wait for it: they go out when the bus read returns them (deliverRead). Chat
   * under review never holds the tick up either: the webhook runs beside the ticks, and what
   * it passes is appended by the tick after its answer.
   * Returns true when a later tick has work: chat under review, or what the outboxes keep
   * while the appends in flight are at their cap.
   */
  tick(): boolean {
    if (this.appending.size < MAX_APPENDS_IN_FLIGHT) {
      const done: Promise<void> = this.append()
        .catch((err: unknown) => {
          this.o.onError?.(err);
          return false;
        })
        // Own entries go out with the read that brings them back, or else at once: the tick
        // runs after the loop's poll, and the replies the append just resolved (API 202s, acks
        // that do not ride a batch) are written first (their microtasks run before this one),
        // with the frame's first shard after them. Waiting for the next turn put the pass
        // before written (its writes end the turn) between the tick and its frame.
        .then((followed) => (followed && this.o.bus.readsBack ? this.readBack() : undefined))
        .finally(() => {
          this.appending.delete(done);
          this.deliver();
        });
      this.appending.add(done);
    }
    return this.o.outboxes.size > 0 || this.reviewing !== undefined || this.underReview.length > 0 || this.passedReview.length > 0;
  }

  /**
   * Loop time spent writing frames to the sockets since the last call: the fan-out runs when
   * an append or a bus read completes, outside the tick, and the tick stretches for it.
   */
  takeFanoutMs(): number {
    const ms = this.fanoutMs;
    this.fanoutMs = 0;
    return ms;
  }

  /** Resolves when the appends in flight have completed and their entries are written. */
  async settled(): Promise<void> {
    await Promise.all(this.appending);
    // Rests end at once, also those of passes that end while this waits (a drain must not wait them out).
    for (;;) {
      for (const { timer, end } of this.resting.values()) {
        clearTimeout(timer);
        end();
      }
      if (this.passing.size === 0) return;
      await checkPhase();
    }
  }

  /** Bus callback: a read handed over its entries; publish them now (reads come once per tick at most). */
  deliverRead(): void {
    this.deliver();
    for (const end of [...this.readingBack]) end();
  }

  /** Resolves after the next delivered read (own entries queued before it went out with it), or READ_BACK_MS. */
  private readBack(): Promise<void> {
    return new Promise((resolve) => {
      const end = () => {
        clearTimeout(timer);
        this.readingBack.delete(end);
        resolve();
      };
      const timer = setTimeout(end, READ_BACK_MS);
      this.readingBack.add(end);
    });
  }

  /** Drains everything queued, reviews included (used when draining). */
  async flush(): Promise<void> {
    while (this.reviewing || this.underReview.length) {
      this.startReview();
      await this.reviewing;
    }
    await this.settled();
    this.tick();
    await this.settled();
  }

  // ---- delivery state, per followed room ----

  /** The room is followed from `head`: the next delivered batch starts at head.seq + 1. */
  followed(room: string, head: RoomHead): void {
    this.delivered.set(room, head);
  }

  unfollowed(room: string): void {
    this.delivered.delete(room);
    this.longPassed.delete(room);
    this.inbox.delete(room);
    this.recent.drop(room);
  }

  /** Last seq published to the room's local members; what a joiner's replay must reach. */
  lastDelivered(room: string): RoomHead | undefined {
    return this.delivered.get(room);
  }

  /**
   * Bus callback: the room's log restarted under a new epoch. From now on joins compare
   * against the new epoch (an old-epoch `since` is not recoverable) and entries still queued
   * from the old log are dropped.
   */
  onEpoch(room: string, epoch: string): void {
    const last = this.delivered.get(room);
    if (!last || last.epoch === epoch) return;
    this.delivered.set(room, { epoch, seq: 0 });
    if (this.inbox.get(room)?.epoch !== epoch) this.inbox.delete(room);
  }

  /** Bus callback: entries of a followed room, kept until the next deliver step. */
  onEntries(room: string, epoch: string, entries: LogEntry[]): void {
    if (!this.delivered.has(room)) return;
    const box = this.inbox.get(room);
    if (box && box.epoch === epoch) {
      // This worker's own entries may be queued already (ownEntry): skip their read copies.
      const tail = box.entries[box.entries.length - 1]?.seq ?? 0;
      for (const e of entries) if (e.seq > tail) box.entries.push(e);
    } else this.inbox.set(room, { epoch, entries: entries.slice() });
    const t = this.now();
    for (const e of entries) this.o.metrics.busReadLag.observe(Math.max(0, t - e.ts) / 1000);
  }

  // ---- step 1: budget + append ----

  /** Returns true when an entry went into a room followed here (its members get it). */
  private async append(): Promise<boolean> {
    const taken = this.o.outboxes.take();
    const passed = this.passedReview;
    this.passedReview = [];
    if (taken.size === 0 && passed.length === 0) return false;
    const t = this.now();
    const plans = new Map<string, { box?: RoomOutbox; kept: Pending[] }>();
    for (const [room, box] of taken) {
      const kept: Pending[] = [];
      for (const p of this.applyBudget(room, box.normal, t)) {
        if (p.review && this.o.review) this.underReview.push({ room, p });
        else kept.push(p);
      }
      plans.set(room, { box, kept });
    }
    for (const { room, p } of passed) {
      const plan = plans.get(room);
      if (plan) plan.kept.push(p);
      else plans.set(room, { kept: [p] });
    }
    this.startReview();
    const items: AppendItem[] = [];
    const bodies: EntryBody[] = [];
    const owed: Array<{ shown: Pending[]; likes: number; likeReplies: RoomOutbox['likeReplies'] }> = [];
    for (const [room, { box, kept }] of plans) {
      const shown = box ? box.high.concat(kept) : kept;
      const likes = box?.likes ?? 0;
      if (shown.length === 0 && likes === 0) continue;
      const body: EntryBody = { msgs: shown.map((p) => p.msg), likes, ts: t };
      bodies.push(body);
      // Encoded once, here: every worker splices these bytes. A gift or system message nudges
      // the other workers' paced reads, so it does not wait for their next tick.
      items.push({ room, entry: packEntry(body), urgent: (box?.high.length ?? 0) > 0 });
      if (!this.delivered.has(room)) this.rates.add(room, shown.length);
      owed.push({ shown, likes, likeReplies: box?.likeReplies ?? [] });
    }
    if (items.length === 0) return false;
    const started = performance.now();
    let results: Array<RoomHead | Error>;
    try {
      results = await this.o.bus.append(items);
    } catch (err) {
      results = items.map(() => err as Error);
    }
    this.o.metrics.busAppend.observe((performance.now() - started) / 1000);
    let followed = false;
    results.forEach((r, i) => {
      if (!(r instanceof Error)) {
        followed ||= this.delivered.has(items[i]!.room);
        this.ownEntry(items[i]!.room, r, items[i]!.entry);
        this.o.events?.appended(items[i]!.room, r, bodies[i]!);
      }
      const { shown, likes, likeReplies } = owed[i]!;
      const outcome: Outcome = r instanceof Error ? { error: new WireError('UNAVAILABLE') } : { shown: true, seq: r.seq };
      const result = r instanceof Error ? 'unavailable' : 'accepted';
      for (const p of shown) p.reply(outcome);
      this.countByKind(shown, result);
      if (likes > 0) this.o.metrics.messagesReceived.inc({ kind: 'like', result }, likes);
      this.o.metrics.roomStats.count(items[i]!.room, result === 'accepted' ? 'accepted' : 'refused', shown.length + likes);
      for (const reply of likeReplies) reply(outcome);
    });
    return followed;
  }

  /** One webhook call at a time with everything that waits for review; its passes join the next append. */
  private startReview(): void {
    const review = this.o.review;
    if (!review || this.reviewing || this.underReview.length === 0) return;
    const batch = this.underReview;
    this.underReview = [];
    this.reviewing = review(batch.map((c) => ({ room: c.room, msg: c.p.msg })))
      .catch((err: unknown) => {
        // A reviewer must answer with a policy, never throw; if it does, nothing unreviewed passes.
        this.o.onError?.(err);
        return new Set(batch.map((_c, i) => i));
      })
      .then((refused) => {
        batch.forEach((c, i) => {
          if (!refused.has(i)) return this.passedReview.push(c);
          this.o.metrics.messagesReceived.inc({ kind: kindLabel(c.p.msg.k), result: 'rejected' });
          this.o.metrics.roomStats.count(c.room, 'refused');
          c.p.reply({ error: new WireError('REJECTED') });
        });
      })
      .finally(() => {
        this.reviewing = undefined;
      });
  }

  /**
   * This worker's own appended entry is queued for the next deliver step when it directly
   * follows what the room's members have or are about to get: a read on the bus's own pace
   * could come a whole tick later. The read copy is then skipped as already seen; an entry from
   * another worker in between means it waits for the read that brings both.
   */
  private ownEntry(room: string, head: RoomHead, body: PackedBody): void {
    const last = this.delivered.get(room);
    if (!last || last.epoch !== head.epoch) return;
    const box = this.inbox.get(room);
    if (box && box.epoch !== head.epoch) return;
    const tail = box?.entries[box.entries.length - 1]?.seq ?? last.seq;
    if (head.seq !== tail + 1) return;
    const entry: LogEntry = { ...body, seq: head.seq };
    if (box) box.entries.push(entry);
    else this.inbox.set(room, { epoch: head.epoch, entries: [entry] });
  }

  /** Applies the room's budget share; sampled-out messages are answered at once. */
  private applyBudget(room: string, normal: Pending[], t: number): Pending[] {
    if (normal.length === 0) return normal;
    let b = this.budgets.get(room);
    const perSec = this.o.roomChatBudget * this.o.budgetShare(room);
    // The room's allowance refills at its budget and may bank at most one second's worth.
    if (!b) this.budgets.set(room, (b = { budget: new TokenBucket(perSec, t), used: t }));
    b.used = t;
    const allowed = Math.floor(b.budget.refill(t, perSec, perSec));
    const [kept, dropped] = sampleFairly(normal, allowed, (p) => p.msg.u);
    b.budget.spend(kept.length);
    for (const p of dropped) p.reply({ shown: false });
    this.countByKind(dropped, 'sampled_out');
    this.o.metrics.roomStats.count(room, 'sampled_out', dropped.length);
    return kept;
  }

  /**
   * One counter increment per kind, not per message: a labelled prom-client inc hashes its
   * labels each time, and a storm samples out thousands of chat messages per tick.
   */
  private countByKind(ps: readonly Pending[], result: MessageResult): void {
    if (ps.length === 0) return;
    const kinds = new Map<string, number>();
    for (const p of ps) {
      const kind = kindLabel(p.msg.k);
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    for (const [kind, n] of kinds) this.o.metrics.messagesReceived.inc({ kind, result }, n);
  }

  // ---- step 2: deliver ----

  private deliver(): void {
    const inbox = this.inbox;
    this.inbox = new Map();
    const t = this.now();
    // Held while this step publishes: its one-shard rooms are written together, timed as one.
    let step: Fanning | undefined;
    for (const [room, box] of inbox) {
      const last = this.delivered.get(room);
      if (!last) continue;
      if (this.passing.has(room)) {
        this.inbox.set(room, box); // published with what comes next, once the pass in hand is done
        continue;
      }
      // Drop anything already delivered (a re-read after a reconnect to the bus).
      let fresh = last.epoch === box.epoch ? box.entries.filter((e) => e.seq > last.seq) : box.entries;
      if (fresh.length === 0) continue;
      // One frame at most FRAME_MAX_BYTES: the rest is the room's next frame, after this pass.
      const n = frameLength(fresh);
      if (n < fresh.length) {
        this.inbox.set(room, { epoch: box.epoch, entries: fresh.slice(n) });
        fresh = fresh.slice(0, n);
      }
      step ??= this.passStarted(t, fresh[0]!.ts);
      try {
        this.publishBatch(room, box.epoch, fresh, t);
      } catch (err) {
        // Only unencodable input gets here (the API bounds depth and size); the members see
        // the seq gap, and one room's bad entry never stops the other rooms' delivery.
        this.o.onError?.(err);
      }
      this.rates.add(room, fresh.reduce((n, e) => n + e.count, 0));
      this.recent.add(room, box.epoch, fresh);
      this.delivered.set(room, { epoch: box.epoch, seq: fresh[fresh.length - 1]!.seq });
    }
    if (step) this.passEnded(step);
    const cutoff = t - BUDGET_IDLE_MS;
    for (const [room, b] of this.budgets) if (b.used < cutoff) this.budgets.delete(room);
  }

  private publishBatch(room: string, epoch: string, entries: LogEntry[], t: number): void {
    const plain = encodeBatch(room, epoch, entries);
    const f = this.passStarted(t, entries[0]!.ts);
    this.passing.add(room);
    const started = this.now();
    this.o.publisher.publish(room, plain, (d) => {
      this.passEnded(f);
      const took = this.now() - started;
      const long = took > (this.o.restAfterMs ?? Infinity);
      // Only a second long pass in a row rests: one alone (the first frames over 16 KiB, which
      // fault in uWS's per-socket buffers; a GC) says nothing of the next.
      this.rest(room, long && this.longPassed.has(room) ? took * REST_PER_PASS_MS : 0);
      if (long) this.longPassed.add(room);
      else this.longPassed.delete(room);
      const m = this.o.metrics;
      m.batchesPublished.inc();
      m.deliveries.inc(d.receivers);
      m.deliveredBytes.inc(d.bytes);
      // Per message, from its entry's oldest `t` (an entry's messages were accepted within one tick).
      const handed = this.now();
      let count = 0;
      let first: number | undefined;
      for (const e of entries) {
        if (e.count === 0) continue;
        const lag = Math.max(0, handed - e.oldest) / 1000;
        for (let i = 0; i < e.count; i++) m.deliveryLatency.observe(lag);
        count += e.count;
        first ??= lag;
      }
      m.roomStats.delivered(room, count, first ?? 0);
    });
  }

  /** Ends a room's pass after `ms` of rest (none: now). */
  private rest(room: string, ms: number): void {
    const end = () => {
      this.resting.delete(room);
      this.passing.delete(room);
      // What came meanwhile goes out as one frame, on the next turn: not in the turn of the
      // pass's last shard.
      if (this.inbox.has(room)) setImmediate(() => this.deliver());
    };
    if (ms <= 0) return end();
    this.resting.set(room, { timer: setTimeout(end, ms), end });
  }

  /** Timed only when something is published: an idle deliver costs no clock or rusage call. */
  private passStarted(inHand: number, appended: number): Fanning {
    const f = (this.fanning ??= { started: performance.now(), cpu: process.cpuUsage(), inHand, appended, passes: 0 });
    f.passes++;
    f.appended = Math.min(f.appended, appended);
    return f;
  }

  private passEnded(f: Fanning): void {
    if (--f.passes > 0) return;
    if (this.fanning === f) this.fanning = undefined;
    setImmediate(() => this.written(f));
  }

  /**
   * The frames are in every local member's socket (kernel buffer, or uWS's backlog): uWS queues a
   * publish under 16 KiB and writes it when the loop turn ends, before Node's immediates run.
   * Timings of the fan-out (every pass, and what the loop served between a big room's shards)
   * from its oldest entry's append (the reach split).
   */
  private written(f: Fanning): void {
    const m = this.o.metrics;
    const ms = performance.now() - f.started;
    this.fanoutMs += ms;
    m.fanout.observe(ms / 1000);
    const used = process.cpuUsage(f.cpu);
    m.fanoutCpu.inc((used.user + used.system) / 1e6);
    const at = this.now();
    m.batchLag.set({ stage: 'read' }, Math.max(0, f.inHand - f.appended) / 1000);
    m.batchLag.set({ stage: 'written' }, Math.max(0, at - f.appended) / 1000);
    m.batchWrittenAt.set(at / 1000);
  }
}
