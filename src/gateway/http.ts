// Neutral HTTP types for route handlers (health, dev, metrics, the /v1 API), and the uWS
// adapter that reads bodies with a size limit and writes replies safely after aborts.
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws.js';

export interface HttpReq {
  /** Route parameters by name (`:room` -> params.room), URL-decoded. */
  params: Record<string, string>;
  /** The query string's parameters. */
  readonly query: URLSearchParams;
  /** The body, decoded as UTF-8 (invalid bytes become U+FFFD); '' when there is none. */
  text: string;
}

export interface HttpReply {
  status: number;
  body: string | Uint8Array;
  contentType?: string;
  headers?: Record<string, string>;
}

export type HttpHandler = (req: HttpReq) => HttpReply | Promise<HttpReply>;

export interface Route {
  method: 'get' | 'post' | 'del' | 'put' | 'patch';
  pattern: string;
  handler: HttpHandler;
  /** Label for the http_requests_total metric (the pattern by default). */
  label?: string;
  /** Answers from the headers alone, before any body is read (the /v1 API key); undefined = go on. */
  precheck?: (headers: HeaderReader) => HttpReply | undefined;
}

/** A request's headers, read by lower-case name ('' when absent); uWS's HttpRequest is one. */
export interface HeaderReader {
  getHeader(lowerCaseName: string): string;
}

export function json(status: number, value: unknown): HttpReply {
  return { status, body: JSON.stringify(value), contentType: 'application/json' };
}

export function jsonError(status: number, code: string, message: string): HttpReply {
  return json(status, { error: { code, message } });
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 202: 'Accepted', 204: 'No Content', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden',
  404: 'Not Found', 405: 'Method Not Allowed', 413: 'Payload Too Large', 415: 'Unsupported Media Type',
  429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable',
};

/** Status lines built once: every reply writes one. */
const STATUS_LINE = new Map(Object.entries(STATUS_TEXT).map(([code, text]) => [Number(code), `${code} ${text}`]));

export function statusLine(status: number): string {
  return STATUS_LINE.get(status) ?? `${status} Unknown`;
}

export interface MountOptions {
  maxBodyBytes: number;
  onDone?: (label: string, status: number) => void;
  onError?: (err: unknown) => void;
  /** True once the gateway shut down: kept-alive connections get closed, not answered. */
  stopped?: () => boolean;
}

/**
 * The request's Content-Length (0 when absent), or NaN when it repeats the header with
 * different values: uWS would frame the body by the first, so the rest could smuggle a second
 * request (RFC 9112 §6.3 says reject).
 */
export function contentLength(req: HttpRequest): number {
  let first: string | undefined;
  let conflict = false;
  req.forEach((k, v) => {
    if (k !== 'content-length') return;
    if (first !== undefined && v.trim() !== first) conflict = true;
    first ??= v.trim();
  });
  return conflict ? NaN : Number(first ?? 0);
}

/**
 * Answers 400 and closes the connection, for a request whose framing cannot be trusted. The
 * answer waits one turn: uWS parses bytes pipelined behind a request at once, and serves them
 * if this response has ended, but closes the connection if it is still pending — so whatever
 * was smuggled behind is never served (the 400 is then lost with the connection).
 */
export function refuseFraming(res: HttpResponse): void {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  setImmediate(() => {
    if (aborted) return;
    res.cork(() => {
      res.writeStatus(statusLine(400)).writeHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ error: { code: 'BAD_REQUEST', message: 'conflicting Content-Length headers' } }), true);
    });
  });
}

/** What a handler gets; the query string is parsed only when a handler reads it (most never do). */
class UwsReq implements HttpReq {
  text = '';
  private parsed: URLSearchParams | undefined;
  constructor(
    readonly params: Record<string, string>,
    private readonly rawQuery: string,
  ) {}

  get query(): URLSearchParams {
    return (this.parsed ??= new URLSearchParams(this.rawQuery));
  }
}

/**
 * Registers a route on the uWS app. Every API post passes here, so it reads from uWS only what
 * the route uses (profiled at ~9 µs per post when it also built a header record, the remote
 * address and the parsed query for every request).
 */
export function mount(app: TemplatedApp, route: Route, o: MountOptions): void {
  const paramNames = route.pattern.split('/').filter((s) => s.startsWith(':')).map((s) => s.slice(1));
  const label = route.label ?? route.pattern;
  const hasBody = route.method !== 'get' && route.method !== 'del';
  app[route.method](route.pattern, (res: HttpResponse, req: HttpRequest) => {
    if (o.stopped?.()) return void res.close();
    const declared = contentLength(req);
    if (Number.isNaN(declared)) {
      o.onDone?.(label, 400);
      return refuseFraming(res);
    }
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    /** `close`: answered before the body was read, so the connection cannot carry on. */
    const finish = (reply: HttpReply, close = false) => {
      o.onDone?.(label, reply.status);
      if (aborted) return;
      res.cork(() => {
        res.writeStatus(statusLine(reply.status));
        if (reply.contentType) res.writeHeader('Content-Type', reply.contentType);
        if (reply.headers) for (const k in reply.headers) res.writeHeader(k, reply.headers[k] ?? '');
        res.end(reply.body, close);
      });
    };
    const early = route.precheck?.(req);
    if (early) return finish(early, hasBody);
    const params: Record<string, string> = {};
    for (let i = 0; i < paramNames.length; i++) params[paramNames[i] as string] = safeDecode(req.getParameter(i) ?? '');
    const r = new UwsReq(params, req.getQuery() ?? '');
    const run = (text: string) => {
      r.text = text;
      let out: HttpReply | Promise<HttpReply>;
      try {
        out = route.handler(r);
      } catch (err) {
        o.onError?.(err);
        return finish(jsonError(500, 'INTERNAL', 'internal error'));
      }
      if (out instanceof Promise) {
        out.then(finish, (err) => {
          o.onError?.(err);
          finish(jsonError(500, 'INTERNAL', 'internal error'));
        });
      } else finish(out);
    };
    if (!hasBody) return run('');
    if (declared > o.maxBodyBytes) return finish(jsonError(413, 'TOO_LARGE', `body over ${o.maxBodyBytes} bytes`));
    let chunks: Buffer[] | undefined;
    let size = 0;
    let refused = false;
    res.onData((chunk, isLast) => {
      if (refused) return;
      size += chunk.byteLength;
      if (size > o.maxBodyBytes) {
        refused = true;
        return finish(jsonError(413, 'TOO_LARGE', `body over ${o.maxBodyBytes} bytes`));
      }
      // uWS neuters the chunk after this callback. A body in one chunk (the usual post) is
      // decoded from uWS's own bytes, with no copy in between: an ArrayBuffer per post cost a
      // malloc, a memset and a free (bench/notes/big-room.md, session 21). Others are gathered.
      if (isLast && !chunks) return run(Buffer.from(chunk).toString('utf8'));
      (chunks ??= []).push(Buffer.from(chunk.slice(0)));
      if (isLast) run(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
