// The control channel: one stream every worker reads (in the same order), carrying kicks,
// mutes and user disconnects. Touched per command, never per message.
import { decode, encode } from '@msgpack/msgpack';
import type { ControlChannel, ControlCommand } from '../bus.js';
import { CONTROL_MAXLEN, type Keys } from './keys.js';
import type { Patience } from './patience.js';
import { field, PACK } from './room-log.js';
import type { Client } from './scripts.js';
import type { StreamItem } from './stream-reader.js';

export class RedisControl implements ControlChannel {
  constructor(
    private readonly conn: Client,
    private readonly keys: Keys,
    private readonly ttlMs: number,
    private readonly patience: Patience,
  ) {}

  async control(cmd: ControlCommand): Promise<void> {
    const key = this.keys.control;
    const payload = Buffer.from(encode(cmd, PACK));
    await this.patience.bound(Promise.all([this.conn.xadd(key, 'MAXLEN', '~', CONTROL_MAXLEN, '*', 'c', payload), this.conn.pexpire(key, this.ttlMs)]));
  }

  /** The id reading starts after: "now", resolved to a concrete id so a reconnect misses nothing. */
  async lastId(): Promise<string> {
    const last = await this.patience.bound(this.conn.xrevrange(this.keys.control, '+', '-', 'COUNT', 1));
    return last[0]?.[0] ?? '0-0';
  }
}

/** The commands in a read of the control stream; malformed ones are skipped (and counted by the caller). */
export function decodeControl(items: StreamItem[]): Array<ControlCommand | undefined> {
  return items.map(([, fields]) => {
    const raw = field(fields, 'c');
    let cmd: unknown;
    try {
      cmd = raw ? decode(raw) : undefined;
    } catch {
      return undefined;
    }
    return isControl(cmd) ? cmd : undefined;
  });
}

function isControl(v: unknown): v is ControlCommand {
  if (typeof v !== 'object' || v === null) return false;
  const c = v as Record<string, unknown>;
  if (c.type === 'disconnect') return typeof c.uid === 'string' && typeof c.untilMs === 'number';
  if (typeof c.room !== 'string' || typeof c.untilMs !== 'number') return false;
  if (c.type === 'kick') return typeof c.uid === 'string';
  return c.type === 'mute' && (c.uid === undefined || typeof c.uid === 'string');
}
