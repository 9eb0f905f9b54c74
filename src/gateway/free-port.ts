// A free TCP port chosen up front. uSockets sets SO_REUSEPORT only when given a concrete
// port (not 0); without it, neither a second worker nor a restart (while the old sockets sit
// in TIME_WAIT) could bind the same port.
import { createServer } from 'node:net';

export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no free port'))));
    });
  });
}
