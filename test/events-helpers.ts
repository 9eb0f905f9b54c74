// A real HTTP endpoint that receives roomcast's business-event batches, for the events tests.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  status: number;
  body: string;
  signature: string | undefined;
  batch: { id: string; node: string; sentAt: number; events: Array<Record<string, unknown> & { type: string; room: string }> };
}

export class EventsEndpoint {
  readonly received: Received[] = [];
  /** Answers with this status (default 204); `hang` never answers. */
  answer: number | 'hang' = 204;
  private constructor(private readonly server: Server) {}

  static async start(): Promise<EventsEndpoint> {
    const server = createServer();
    const ep = new EventsEndpoint(server);
    server.on('request', (req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const status = ep.answer;
        if (status === 'hang') return;
        ep.received.push({ status, body, signature: req.headers['x-roomcast-signature'] as string | undefined, batch: JSON.parse(body) as Received['batch'] });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return ep;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/events`;
  }

  /** Events of the accepted batches (2xx), in arrival order, optionally for one room. */
  events(room?: string): Received['batch']['events'] {
    return this.received.filter((r) => r.status < 300).flatMap((r) => r.batch.events).filter((e) => room === undefined || e.room === room);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
