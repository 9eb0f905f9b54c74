// GET /v1/rooms/:room/messages (PROTOCOL §9): a page of a room's log for backends. A log
// entry holds every message of one tick, so each message carries its entry's seq; pages end
// on entry boundaries and `to` says where the next one starts (entries of only likes hold
// no messages, so the last message's seq can be behind it).
import type { RoomLog } from '../bus/bus.js';
import { unpackMsgs } from '../bus/entry.js';
import type { Msg } from '../protocol/ops.js';
import { WireError } from '../protocol/errors.js';

export interface HistoryPage {
  room: string;
  epoch: string;
  /** Last seq in the room's log. */
  seq: number;
  msgs: Array<{ seq: number } & Msg>;
  /** Last seq this page covers: pass it as `since` for the next page (equal to `seq` at the end). */
  to: number;
}

export async function readHistory(log: Pick<RoomLog, 'range'>, room: string, since: number, limit: number): Promise<HistoryPage> {
  let res;
  try {
    res = await log.range(room, since, limit);
  } catch {
    throw new WireError('UNAVAILABLE', 'room log unreachable');
  }
  const msgs = res.entries.flatMap((e) => unpackMsgs(e).map((m) => ({ seq: e.seq, ...m })));
  const to = res.entries[res.entries.length - 1]?.seq ?? Math.min(Math.max(since, res.oldest - 1), res.head);
  return { room, epoch: res.epoch, seq: res.head, msgs, to };
}
