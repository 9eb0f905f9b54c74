// The one place that loads uWebSockets.js. The package's own entry silently falls back to a
// slow `ws` emulation when its binary cannot load; we load the native binary directly and
// fail loudly instead, so roomcast never runs on the fallback.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type * as UwsTypes from '@trufflesuite/uws-js-unofficial';

export type Uws = typeof UwsTypes;
export type {
  TemplatedApp,
  HttpRequest,
  HttpResponse,
  WebSocket,
  us_listen_socket,
  us_socket_context_t,
} from '@trufflesuite/uws-js-unofficial';

const PACKAGE = '@trufflesuite/uws-js-unofficial';
const require = createRequire(import.meta.url);

/** Absolute path of the native binary for this platform, arch and Node ABI. */
export function nativeBinaryPath(): string {
  const pkgDir = dirname(require.resolve(`${PACKAGE}/package.json`));
  return join(pkgDir, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
}

let loaded: Uws | undefined;

export function loadUws(): Uws {
  if (loaded) return loaded;
  const path = nativeBinaryPath();
  if (!existsSync(path)) {
    throw new Error(
      `uWebSockets.js native binary not found at ${path} ` +
        `(platform ${process.platform}, arch ${process.arch}, Node ABI ${process.versions.modules}). ` +
        `roomcast refuses to run on the package's ws fallback; use a Node version the binary supports.`,
    );
  }
  loaded = require(path) as Uws;
  return loaded;
}
