// A tick pipeline on a real bus, publishing into a list instead of sockets (pipeline tests).
import { decode } from '@msgpack/msgpack';
import { Registry } from 'prom-client';
import type { Bus, BusHandler } from '../src/bus/bus.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { Outboxes } from '../src/tick/outbox.js';
import { TickPipeline } from '../src/tick/pipeline.js';
import type { Msg } from '../src/protocol/ops.js';

export interface Published {
  from: number;
  to: number;
  msgs: Msg[];
  /** When publish was called (performance.now()). */
  at: number;
}

/**
 * Starts `bus` with a pipeline whose frames land in `published`. `deliverReads`: entries read
 * from the bus go out when the read completes (as in a worker), not only on the next tick.
 * `passMs`: each pass ends this long after publish (a fan-out written over loop turns).
 */
export async function startPipeline(bus: Bus, o: { deliverReads?: boolean; passMs?: number; restAfterMs?: number } = {}) {
  const outboxes = new Outboxes();
  const published: Published[] = [];
  const pipeline = new TickPipeline({
    bus,
    outboxes,
    publisher: {
      publish: (_room, plain, done) => {
        const f = decode(plain) as Published;
        published.push({ from: f.from, to: f.to, msgs: f.msgs, at: performance.now() });
        const end = () => done?.({ receivers: 1, bytes: plain.byteLength });
        if (o.passMs === undefined) end();
        else setTimeout(end, o.passMs);
      },
    },
    restAfterMs: o.restAfterMs,
    metrics: createMetrics(new Registry()),
    roomChatBudget: 1000,
    budgetShare: () => 1,
  });
  const handler: BusHandler = {
    onEntries: (room, epoch, entries) => pipeline.onEntries(room, epoch, entries),
    onReadDone: o.deliverReads ? () => pipeline.deliverRead() : undefined,
    onControl: () => {},
  };
  await bus.start(handler);
  return { pipeline, outboxes, published };
}

/** The seqs published, in order. */
export function seqsOf(published: readonly Published[]): number[] {
  return published.flatMap((p) => Array.from({ length: p.to - p.from + 1 }, (_, i) => p.from + i));
}
