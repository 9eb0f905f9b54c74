// The SDK's like button: taps within `windowMs` of a room's first pending tap go out as one
// `like` frame with `count` (docs/protocol.md §8). A frame read by the server costs it a kernel
// read and a call into JS whatever it holds, and a viewer taps hearts in bursts; others see
// likes only as batch counts, so a second of delay is not visible as such.
import type { Clock, TimerHandle } from './clock.js';

/**
 * Most likes per frame: the server's default like burst (`likeBurst`). A frame is refused whole
 * when the user's like bucket holds fewer, so a bigger one would never pass at the defaults.
 */
const LIKES_PER_FRAME = 10;

interface Pending {
  count: number;
  timer: TimerHandle | undefined;
  waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }>;
}

export class LikeBatcher {
  private readonly rooms = new Map<string, Pending>();

  /** `send` writes one frame of `count` likes; its outcome settles every tap in it. */
  constructor(
    private readonly clock: Clock,
    private readonly windowMs: number,
    private readonly send: (room: string, count: number) => Promise<void>,
  ) {}

  /** One tap; resolves once the frame holding it is written. */
  add(room: string): Promise<void> {
    if (this.windowMs <= 0) return this.send(room, 1);
    let p = this.rooms.get(room);
    if (!p) {
      p = { count: 0, timer: undefined, waiters: [] };
      this.rooms.set(room, p);
      p.timer = this.clock.setTimeout(() => this.flush(room), this.windowMs);
    }
    p.count++;
    const written = new Promise<void>((resolve, reject) => p.waiters.push({ resolve, reject }));
    if (p.count >= LIKES_PER_FRAME) this.flush(room);
    return written;
  }

  /** Sends every room's pending likes now (before a close). */
  flushAll(): void {
    for (const room of [...this.rooms.keys()]) this.flush(room);
  }

  private flush(room: string): void {
    const p = this.rooms.get(room);
    if (!p) return;
    this.rooms.delete(room);
    if (p.timer !== undefined) this.clock.clearTimeout(p.timer);
    this.send(room, p.count).then(
      () => p.waiters.forEach((w) => w.resolve()),
      (err: unknown) => p.waiters.forEach((w) => w.reject(err)),
    );
  }
}
