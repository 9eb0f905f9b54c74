// Dev-mode routes: token minting for newcomers and the demo page. Registered only when no
// secret is configured, so with a secret /dev/* does not exist.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { mintToken } from '../auth/tokens.js';
import { isUid } from '../protocol/ops.js';
import { json, jsonError, type Route } from '../gateway/http.js';
import { packageRoot } from '../package-root.js';

const require = createRequire(import.meta.url);
const publicDir = join(packageRoot, 'public');

/** Serves a file, read on first request (the SDK bundle exists only after `npm run build`). */
function asset(path: string, contentType: string): Route['handler'] {
  let body: Buffer | undefined;
  return () => {
    if (!existsSync(path)) return jsonError(404, 'NOT_FOUND', `${path} is missing: run npm run build`);
    body ??= readFileSync(path);
    return { status: 200, body, contentType, headers: { 'Cache-Control': 'no-cache' } };
  };
}

export function devRoutes(secret: string): Route[] {
  return [
    {
      method: 'get',
      pattern: '/dev/token',
      handler: async (req) => {
        const uid = req.query.get('uid') ?? '';
        const name = req.query.get('name') ?? undefined;
        if (!isUid(uid)) return jsonError(400, 'BAD_REQUEST', 'uid must be 1-64 chars');
        if (name !== undefined && name.length > 32) return jsonError(400, 'BAD_REQUEST', 'name must be at most 32 chars');
        const role = req.query.get('role') === 'moderator' ? 'moderator' : undefined;
        return json(200, { token: await mintToken(secret, { uid, name, role, ttlSec: 24 * 3600 }) });
      },
    },
    { method: 'get', pattern: '/', handler: asset(join(publicDir, 'index.html'), 'text/html; charset=utf-8') },
    { method: 'get', pattern: '/roomcast.js', handler: asset(join(publicDir, 'roomcast.js'), 'text/javascript') },
    {
      method: 'get',
      pattern: '/vendor/msgpack.min.js',
      handler: asset(require.resolve('@msgpack/msgpack/dist.umd/msgpack.min.js'), 'text/javascript'),
    },
  ];
}
