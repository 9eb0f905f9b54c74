// The ops listener of --admin-port: /metrics, /healthz and /readyz on their own address
// (e.g. 127.0.0.1:9090), off the public port. node:http, not uWS: a few requests a second,
// and the supervisor (which never loads uWS) serves it in a cluster.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { jsonError, type HttpReply, type Route } from './http.js';

export interface AdminServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves the GET routes (exact paths) on host:port; anything else is 404. */
export async function startAdminServer(
  host: string,
  port: number,
  routes: readonly Route[],
  onDone?: (route: string, status: number) => void,
): Promise<AdminServer> {
  const byPath = new Map(routes.filter((r) => r.method === 'get').map((r) => [r.pattern, r]));
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const route = req.method === 'GET' ? byPath.get(url.pathname) : undefined;
    const send = (reply: HttpReply) => {
      if (route) onDone?.(route.label ?? route.pattern, reply.status);
      res.writeHead(reply.status, { ...(reply.contentType ? { 'content-type': reply.contentType } : {}), ...reply.headers });
      res.end(reply.body);
    };
    if (!route) return send(jsonError(404, 'NOT_FOUND', 'no such route'));
    Promise.resolve()
      .then(() =>
        route.handler({ params: {}, query: url.searchParams, text: '' }),
      )
      .then(send, () => send(jsonError(500, 'INTERNAL', 'internal error')));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
