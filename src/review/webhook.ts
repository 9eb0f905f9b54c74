// The review webhook: once per tick per worker, all candidate chat in one POST; the answer
// names the messages to refuse. Slow or failing reviewers fall back to the configured policy.
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { Reviewer } from '../tick/pipeline.js';

export interface WebhookOptions {
  url: string;
  timeoutMs: number;
  /** true: let everything through when the reviewer fails; false: refuse everything. */
  failOpen: boolean;
  /** roomcast_review_calls_total (metrics.ts: its outcomes start at 0). */
  calls: Counter<'outcome'>;
  log: Logger;
}

/**
 * Request: `POST url` `{messages: [{id, room, uid, name?, kind, body}]}`.
 * Response: 200 `{reject: [id, ...]}` (ids not listed pass).
 */
export function createWebhookReviewer(o: WebhookOptions): Reviewer {
  const { calls } = o;
  return async (candidates) => {
    const messages = candidates.map((c, id) => ({ id, room: c.room, uid: c.msg.u, name: c.msg.n, kind: c.msg.k, body: c.msg.b }));
    try {
      const res = await fetch(o.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages }),
        signal: AbortSignal.timeout(o.timeoutMs),
      });
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`reviewer answered ${res.status}`);
      }
      const answer = (await res.json()) as { reject?: unknown };
      if (!Array.isArray(answer.reject)) throw new Error('reviewer answer has no reject list');
      calls.inc({ outcome: 'ok' });
      return new Set(answer.reject.filter((id): id is number => Number.isInteger(id)));
    } catch (err) {
      const timeout = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      calls.inc({ outcome: timeout ? 'timeout' : 'error' });
      o.log.warn({ err: (err as Error).message, policy: o.failOpen ? 'fail-open' : 'fail-closed' }, 'review webhook failed');
      return o.failOpen ? new Set() : new Set(candidates.map((_c, i) => i));
    }
  };
}
