// roomcast client SDK: public API. Runs in browsers and in Node (global WebSocket, or the
// `ws` package). No server code is imported from here.
import { RoomcastClient, type ConnectOptions } from './client.js';

/** Creates a client and starts connecting; rooms joined on it are kept across reconnects. */
export function connect(options: ConnectOptions): RoomcastClient {
  return new RoomcastClient(options);
}

export { RoomcastClient, type ConnectOptions } from './client.js';
export {
  RoomcastError,
  SERVER_ERROR_CODES,
  CLIENT_ERROR_CODES,
  type RoomcastErrorCode,
  type ServerErrorCode,
  type ClientErrorCode,
} from './errors.js';
export type {
  Ack,
  Batch,
  ClientEvents,
  ConnectionState,
  GapEvent,
  JoinedEvent,
  JoinOptions,
  JoinResult,
  Msg,
  OpenEvent,
  ResetEvent,
  RoomInfo,
  StateEvent,
} from './types.js';
export type { Clock, TimerHandle } from './clock.js';
export { systemClock } from './clock.js';
export type { SocketLike, SocketFactory, WebSocketConstructor } from './transport.js';
export type { Inflate } from './inflate.js';
export { tokenExpiryMs } from './token.js';
