// The adaptive tick loop. A tick's own work (outboxes, budgets, sending the append) runs after
// the loop's poll, before the next one is scheduled; its round trip completes beside the next
// ticks. When that work, plus the fan-out (frames written to the sockets when appends and bus
// reads complete) while the members talk, or the event loop being busy, outlasts its share of
// the tick (less under heavy ingress), the next tick waits longer: batches grow and frames per
// member per second fall instead of queues growing. A room that only listens gets frames as
// fast as its passes go, each with what came during the last one (the pipeline holds a room's
// entries while its pass is written): stretched for its passes too, a listening room's ticks
// outgrew them, its frames grew past uWS's 16 KB cork buffer, and the passes slowed until it
// collapsed (18k members at 1,036 msgs/s; bench/notes/big-room.md, sessions 15 and 16).
//
// Idle, the loop sleeps: no timer at all until wake() says something was queued (ingress,
// the API) or the bus handed over entries. The first tick after a wake runs one (effective)
// tick later, so the first message after idle waits at most one tick, as before; wakes
// while a tick is due keep the cadence, and a tick with nothing new puts the loop to sleep.
import { talkShare } from '../gateway/member-talk.js';
import { checkPhase } from '../util/loop-phase.js';

export interface TickerOptions {
  tickMs: number;
  maxTickMs: number;
  /** One tick; resolves true when work is left for a later tick (e.g. chat under review). */
  run: () => Promise<boolean>;
  /** A failed tick is reported and the loop goes on: one bad tick must not stop delivery. */
  onError: (err: unknown) => void;
  onTick?: (workMs: number, effectiveMs: number) => void;
  /** Loop time spent since the last tick on its behalf outside it (the fan-out writes). */
  takeBusyMs?: () => number;
  /**
   * Share (0..1) of the event loop busy since the last call, everything counted (ingress,
   * the API, the fan-out): what is not the tick's own leaves less room for its fan-out.
   */
  loopBusy?: () => number;
  /** How much the members are talking, 0..1: other work weighs double while they storm. */
  talking?: () => number;
  now?: () => number;
}

/**
 * Share of the loop the tick's work and fan-out may take with nothing else running: all of it,
 * as a bare uWS server publishes back to back (with 10 % kept back a room of 18k got 2.9 frames
 * per member per second at 74 % CPU where the bare server sent 4.5 at 96 %; with a third, a room
 * of 5k got 13 where it sent 20, bench/notes/big-room.md). Between passes, and between a
 * pass's turns while the members talk, the loop serves requests, acks and pongs.
 */
export const TICK_SHARE = 1;
/**
 * Each share of the loop other work took (ingress, the API) takes this much from the tick's, and
 * twice as much while the members storm (`talking` 1): under a storm of chat and likes a member
 * gets fewer frames per second, each carrying more messages, because the socket write, not the
 * message, is the cost, and the loop keeps time for their frames (storm: gift p99 521 ms at a
 * 197 ms tick with the weight at 1, 381–538 ms at 229–351 ms ticks with 2). An API feeding a
 * listening room takes only its own share: the fan-out gets the rest (a room of 5k at 2,980
 * msgs/s: 8.4 frames per member per second with the weight at 2, 16.4 with 1).
 */
const OTHER_WEIGHT = 1;
/**
 * While the members storm, this share of the loop is also kept back for their own frames (their
 * ingress, pings, acks), and the tick's share may fall to STORM_MIN_SHARE: a storm's fan-out
 * costs a socket write per member per frame whatever the frame carries, so its members get
 * fewer, fuller frames. storm (12k members, 30k inbound messages a second, two workers): with
 * 0.1 and a floor of 0.1 the tick was ~300 ms, ~2 socket writes per inbound message, ~30 µs of
 * server CPU per inbound message; with these ~600–800 ms, 0.8–1.2 writes and 19–23 µs, gifts
 * within 2 ticks (bench/notes/storm.md, session 15).
 */
const STORM_RESERVE = 0.7;
/** Ingress never squeezes the tick's share below this (maxTickMs caps the stretch anyway)... */
const MIN_TICK_SHARE = 0.1;
/** ...nor a storm below this one. */
const STORM_MIN_SHARE = 0.07;
/**
 * A high-priority message waits at most one configured tick, or while the members storm this
 * share of the stretched tick: gifts arriving every few hundred ms each forced a tick of their
 * own, and with it a frame on every worker (bench/notes/storm.md, session 15).
 */
const STORM_URGENT_SHARE = 0.5;

/** At most this many skipped idle ticks are replayed into the smoothing on a wake. */
const MAX_DECAY_STEPS = 50;

export class Ticker {
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  /** No tick scheduled or running: waiting for wake(). */
  private asleep = false;
  /** wake() was called while a tick was due or running: traffic goes on, so does the cadence. */
  private woken = false;
  private sleptAt = 0;
  /** When the scheduled tick is due, and when the last one started. */
  private due = 0;
  private lastStart: number | undefined;
  /** A high-priority message came while a tick ran: the next one follows within one configured tick. */
  private hurried = false;
  private running: Promise<void> | undefined;
  private effective: number;
  private readonly now: () => number;

  constructor(private readonly o: TickerOptions) {
    this.effective = o.tickMs;
    this.now = o.now ?? (() => performance.now());
  }

  get effectiveMs(): number {
    return this.effective;
  }

  /** True while no tick is scheduled (nothing queued since the last one). */
  get sleeping(): boolean {
    return this.asleep;
  }

  /** Starts asleep: the first wake() schedules the first tick. */
  start(): void {
    this.stopped = false;
    this.sleep();
  }

  /**
   * Something needs a tick: queued sends, or entries from the bus (they keep the stretch
   * measured). `urgent` (a high-priority message) waits at most one configured tick, not the
   * stretched one: the stretch spaces out chat fan-out, and must not hold a gift back.
   */
  wake(urgent = false): void {
    if (this.stopped) return;
    if (!this.asleep) {
      this.woken = true;
      if (urgent) this.hurry();
      return;
    }
    this.asleep = false;
    // The smoothing as if the skipped ticks had run with nothing to do.
    const skipped = Math.min(MAX_DECAY_STEPS, Math.floor((this.now() - this.sleptAt) / this.effective));
    for (let i = 0; i < skipped && this.effective > this.o.tickMs; i++) this.effective = this.effective * 0.8 + this.o.tickMs * 0.2;
    this.schedule(urgent ? this.urgentMs() : this.effective, this.now());
  }

  /** Brings the next tick forward to at most one configured tick from now. */
  private hurry(): void {
    if (this.timer === undefined) return void (this.hurried = true); // a tick is running: the next one comes soon
    const now = this.now();
    const wait = this.urgentMs();
    if (this.due - now <= wait) return;
    clearTimeout(this.timer);
    this.schedule(wait, now);
  }

  /** How long a high-priority message may wait for its tick. */
  private urgentMs(): number {
    return Math.min(this.effective, Math.max(this.o.tickMs, this.stormWaitMs));
  }

  /**
   * How long a high-priority message may wait while the members storm (0 when they do not): for
   * its tick here, and for this worker's next frame when another worker appended it.
   */
  get stormWaitMs(): number {
    return this.effective * STORM_URGENT_SHARE * (this.o.talking?.() ?? 0);
  }

  private sleep(): void {
    this.asleep = true;
    this.sleptAt = this.now();
  }

  private schedule(delay: number, plannedFrom: number): void {
    if (this.stopped) return;
    const due = plannedFrom + delay;
    this.due = due;
    this.timer = setTimeout(() => void this.fire(due), delay);
  }

  private async fire(due: number): Promise<void> {
    this.timer = undefined;
    const late = Math.max(0, this.now() - due); // the loop was busy (socket writes, ingress)
    // The tick runs after the poll: run on the timer, it took the outboxes without what the poll
    // was about to read (requests that came during the pass just written), and its frame waited
    // for that pass's writes, one pass later than from a bare uWS server (5k members at 1,907
    // msgs/s: p50 76 ms against 34; 36 ms after this; bench/notes/big-room.md, session 16).
    this.running = checkPhase();
    await this.running;
    if (this.stopped) return;
    const start = this.now();
    let more = false;
    this.running = this.o.run().then(
      (m) => void (more = m),
      (err: unknown) => this.o.onError(err),
    );
    await this.running;
    this.running = undefined;
    const work = this.now() - start;
    // Fan-out done just before this tick was due also made it late: counted once.
    const fanout = this.o.takeBusyMs?.() ?? 0;
    const talk = this.o.talking?.() ?? 0;
    // The fan-out stretches the tick only while the members talk: a listening room's frames
    // follow its passes as a bare uWS server's do (the pipeline merges what comes during a pass).
    const busy = work + talkShare(talk) * Math.max(late, fanout);
    // The tick's work and fan-out take at most TICK_SHARE of the loop, less what else kept it
    // busy since the last tick (twice that, and a reserve, while the members storm): fewer frames
    // per member per second instead of a lagging loop. Smoothed to avoid oscillation.
    const since = this.lastStart === undefined ? 0 : start - this.lastStart;
    this.lastStart = start;
    const used = this.o.loopBusy?.() ?? 0;
    const other = since > 0 ? Math.max(0, used - (work + fanout) / since) : 0;
    const floor = MIN_TICK_SHARE - (MIN_TICK_SHARE - STORM_MIN_SHARE) * talk;
    const share = Math.max(floor, TICK_SHARE - STORM_RESERVE * talk - OTHER_WEIGHT * (1 + talk) * other);
    const wanted = Math.min(this.o.maxTickMs, Math.max(this.o.tickMs, busy / share));
    this.effective = wanted > this.effective ? wanted : this.effective * 0.8 + wanted * 0.2;
    this.o.onTick?.(work, this.effective);
    if (this.stopped) return;
    const again = more || this.woken;
    this.woken = false;
    if (!again) return this.sleep();
    const hurried = this.hurried;
    this.hurried = false;
    // The cadence is kept from when this tick was due, not from when the loop got to it: a tick
    // late behind socket writes must not push every later one back (a bare uWS server's
    // setInterval does not drift either; kept, a room of 5k got 17 frames per member per second, not 15).
    const next = hurried ? start + this.urgentMs() : due + this.effective;
    const now = this.now();
    this.schedule(Math.max(0, next - now), now);
  }

  /** Stops scheduling; resolves once a tick in progress has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
