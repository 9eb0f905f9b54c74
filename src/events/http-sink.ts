// Batches to the events webhook: one POST per batch, signed with HMAC-SHA256 over the raw body
// (header x-roomcast-signature: sha256=<hex>), so the backend knows it came from roomcast.
import { createHmac } from 'node:crypto';
import { SIGNATURE_HEADER, type EventBatch, type EventSink } from './types.js';

export interface HttpSinkOptions {
  url: string;
  secret: string;
  timeoutMs: number;
}

export function sign(secret: string, body: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
}

export function httpSink(o: HttpSinkOptions): EventSink {
  return {
    name: 'http',
    async send(batch: EventBatch): Promise<void> {
      const body = JSON.stringify(batch);
      const res = await fetch(o.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: sign(o.secret, body) },
        body,
        signal: AbortSignal.timeout(o.timeoutMs),
      });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`events webhook answered ${res.status}`);
    },
    async close(): Promise<void> {},
  };
}
