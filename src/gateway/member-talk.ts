// How much this worker's members are talking, 0 (they only listen) to 1 (a storm of chat and
// likes): their frames per second, read at most every SAMPLE_MS, against STORM_FRAMES_PER_SEC.
// While they talk, the fan-out yields to their frames (shorter turns, room-fanout.ts; a longer
// tick, tick/ticker.ts): each of their pings and acks waits for the turn in progress. A
// listening room's SDK clients send next to nothing (they ping only when no frame came for a
// while), and API requests are not counted: a backend's POST waits behind a pass as it would on
// a bare uWS server.
//
// A storm starts all at once, and until the level reads it a big room's pass is written in one
// turn (the quiet loop's slice): ~6k socket writes that held every ping behind them for
// 150–300 ms at the storm bench's onset (bench/notes/storm.md, session 16). So a rise is taken
// within RISE_MS and a fall smoothed over FALL_MS, and a read after a quiet spell counts the
// frames from the first of them, not from the last read (a tick that slept 10 s read a storm's
// first 100 ms as a hundredth of it). One clock read per first frame after a read, not per
// frame: this runs once per member frame.
const SAMPLE_MS = 100;
const RISE_MS = 200;
const FALL_MS = 1000;
/** Member frames per second on one worker that count as a storm (storm bench: ~10k per worker). */
export const STORM_FRAMES_PER_SEC = 5000;
/**
 * From this level (a quarter of a storm) the members talk: a pass's turns are one shard each
 * (room-fanout.ts) and the tick stretches for the whole fan-out (tick/ticker.ts). Below it a
 * room listens, and is written as a bare uWS server writes it.
 */
export const TALKING = 0.25;

/** How far the members talk, 0..1: 1 from a quarter of a storm (`level()`) up. */
export function talkShare(level: number): number {
  return Math.min(1, level / TALKING);
}

export class MemberTalk {
  private frames = 0;
  /** When the last read was, how many frames it had seen, and when the first one after it came. */
  private at = 0;
  private seen = 0;
  private firstAt = 0;
  private rate = 0;

  /** `now`: ms, monotonic. */
  constructor(private readonly now: () => number = () => performance.now()) {}

  /** A member frame came. */
  frame(): void {
    if (this.frames++ === this.seen) this.firstAt = this.now();
  }

  /** 0..1, now. */
  level(): number {
    const now = this.now();
    const dt = now - this.at;
    if (dt >= SAMPLE_MS) {
      const n = this.frames - this.seen;
      const sample = n === 0 ? 0 : (n * 1000) / Math.max(SAMPLE_MS, now - Math.max(this.at, this.firstAt));
      this.rate += (sample - this.rate) * Math.min(1, dt / (sample > this.rate ? RISE_MS : FALL_MS));
      this.at = now;
      this.seen = this.frames;
    }
    return Math.min(1, this.rate / STORM_FRAMES_PER_SEC);
  }
}
