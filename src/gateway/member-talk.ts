// How much this worker's members are talking, 0 (they only listen) to 1 (a storm of chat and
// likes): their frames per second, read at most every SAMPLE_MS and smoothed over about a
// second, against STORM_FRAMES_PER_SEC. While they talk, the fan-out yields to their frames
// (shorter turns, room-fanout.ts; a longer tick, tick/ticker.ts): each of their pings and acks
// waits for the turn in progress. A listening room's SDK clients send next to nothing (they
// ping only when no frame came for a while), and API requests are not counted: a backend's
// POST waits behind a pass as it would on a bare uWS server. A bare counter, not the
// tick's RateMeter: that one decays per event (a pow a call), and this runs once per frame.
const SAMPLE_MS = 100;
const SMOOTH_MS = 1000;
/** Member frames per second on one worker that count as a storm (storm bench: ~10k per worker). */
export const STORM_FRAMES_PER_SEC = 5000;

export class MemberTalk {
  /** Bumped once per member frame. */
  frames = 0;
  private at = 0;
  private seen = 0;
  private rate = 0;

  /** 0..1 at `now` (ms, monotonic). */
  level(now: number): number {
    const dt = now - this.at;
    if (dt >= SAMPLE_MS) {
      const sample = ((this.frames - this.seen) * 1000) / dt;
      this.rate += (sample - this.rate) * Math.min(1, dt / SMOOTH_MS);
      this.at = now;
      this.seen = this.frames;
    }
    return Math.min(1, this.rate / STORM_FRAMES_PER_SEC);
  }
}
