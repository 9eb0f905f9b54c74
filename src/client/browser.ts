// Entry of the browser bundle (public/roomcast.js, an IIFE): the SDK as `globalThis.Roomcast`.
//   <script src="/roomcast.js"></script>
//   <script> const rc = Roomcast.connect({ url: '/ws', token }); </script>
import { connect, RoomcastClient, RoomcastError, SERVER_ERROR_CODES, CLIENT_ERROR_CODES, tokenExpiryMs } from './index.js';

export { connect, RoomcastClient, RoomcastError, SERVER_ERROR_CODES, CLIENT_ERROR_CODES, tokenExpiryMs };

const api = { connect, RoomcastClient, RoomcastError, SERVER_ERROR_CODES, CLIENT_ERROR_CODES, tokenExpiryMs, version: 1 };
(globalThis as { Roomcast?: typeof api }).Roomcast = api;
