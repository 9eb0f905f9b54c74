// Replay frames (recovery and `last` tails) encoded once for every member that gets the same
// range: in a reconnect wave thousands of members replay the same entries, and a crowd joining
// with `last` takes the same tail, and each one's encode was a copy of the frame
// (5,000 members × 40 KB in ~1.2 s; bench/notes/big-room.md, session 22). A frame's bytes depend
// only on its room, epoch and seq range: entries never change within an epoch.
import type { LogEntry } from '../bus/bus.js';
import type { EncodedFrame } from '../protocol/codec.js';
import { encodeBatch } from '../tick/batch.js';

/** The most recent frames kept, across rooms: ~1 MB at REPLAY_FRAME_BYTES each (plus their `z`). */
const KEPT = 64;

export class ReplayFrames {
  private readonly frames = new Map<string, EncodedFrame>();

  /** The frame for `entries` (consecutive, non-empty), encoded at its first request. */
  get(room: string, epoch: string, entries: readonly LogEntry[]): EncodedFrame {
    const key = `${room}\0${epoch}\0${entries[0]!.seq}\0${entries[entries.length - 1]!.seq}`;
    let f = this.frames.get(key);
    if (!f) {
      f = { plain: encodeBatch(room, epoch, entries) };
      if (this.frames.size >= KEPT) this.frames.delete(this.frames.keys().next().value!);
      this.frames.set(key, f);
    }
    return f;
  }
}
