// The `socketioxide` server kind: Engine.IO v4 / Socket.IO v5 framing written by hand on
// a raw WebSocket (no socket.io-client), for the peer server's contract:
//
//   ws://ADDR/socket.io/?EIO=4&transport=websocket
//   server `0{"sid":…,"pingInterval":…}`  client `40`   server `40{"sid":…}`
//   server `2` (ping)                     client `3` (pong)
//   client `421["join","room-1"]`         server `431["ok"]`
//   server `42["event",<data>]`           a delivery
//   POST /publish {"room":"room-1","data":<payload>}  →  202 {"ok":true}

/** Engine.IO packet types (the first character of a frame). */
const EIO = { open: '0', close: '1', ping: '2', pong: '3', message: '4', noop: '6' };
/** Socket.IO packet types (the character after Engine.IO's `4`). */
const SIO = { connect: 0, disconnect: 1, event: 2, ack: 3, connectError: 4 };

/** The ack id this client puts on its one `join`. */
const JOIN_ACK_ID = 1;

/**
 * A Socket.IO packet inside an Engine.IO `message` frame (`4…`):
 * `<type>[/<namespace>,][<ack id>][<JSON>]`. Returns null for anything else.
 */
export function parseSocketIo(text) {
  if (text.length < 2 || text[0] !== EIO.message) return null;
  const type = text.charCodeAt(1) - 48;
  if (type < 0 || type > 6) return null;
  let at = 2;
  let nsp = '/';
  if (text[at] === '/') {
    const comma = text.indexOf(',', at);
    if (comma < 0) {
      nsp = text.slice(at);
      at = text.length;
    } else {
      nsp = text.slice(at, comma);
      at = comma + 1;
    }
  }
  let id = null;
  const digitsFrom = at;
  while (at < text.length && text.charCodeAt(at) >= 48 && text.charCodeAt(at) <= 57) at += 1;
  if (at > digitsFrom) id = Number(text.slice(digitsFrom, at));
  // Throws on bad JSON: the caller counts it as an error frame.
  const data = at < text.length ? JSON.parse(text.slice(at)) : undefined;
  return { type, nsp, id, data };
}

export const socketioxide = {
  name: 'socketioxide',

  wsUrl(addr) {
    return `ws://${addr}/socket.io/?EIO=4&transport=websocket`;
  },

  /** Rooms `room-1` … `room-M`: the server makes a room when someone joins it. */
  async prepare(run) {
    return Array.from({ length: run.opts.sessions }, (_, j) => ({ room: `room-${j + 1}` }));
  },

  /** Handle one text frame of `conn`; returns a delivered payload or null. */
  onText(conn, text) {
    const first = text[0];
    if (first === EIO.ping) {
      // A pong echoes the ping's payload, if any (`2probe` → `3probe`).
      conn.send(EIO.pong + text.slice(1));
      return null;
    }
    if (first === EIO.noop) return null;
    if (first === EIO.close) {
      conn.fail('the server sent an Engine.IO close packet');
      return null;
    }
    if (first === EIO.open) {
      if (conn.state !== 'open') return null;
      conn.state = 'connecting';
      conn.send(`${EIO.message}${SIO.connect}`);
      return null;
    }
    const packet = parseSocketIo(text);
    if (packet === null) {
      conn.errorFrame(`an unexpected frame ${JSON.stringify(text.slice(0, 80))}`);
      return null;
    }
    switch (packet.type) {
      case SIO.event:
        if (
          conn.state === 'joined' &&
          Array.isArray(packet.data) &&
          packet.data[0] === 'event' &&
          packet.data[1] !== null &&
          typeof packet.data[1] === 'object'
        ) {
          return packet.data[1];
        }
        return null;
      case SIO.connect:
        if (conn.state === 'connecting') {
          conn.state = 'joining';
          const join = JSON.stringify(['join', conn.session.room]);
          conn.send(`${EIO.message}${SIO.event}${JOIN_ACK_ID}${join}`);
        }
        return null;
      case SIO.ack:
        if (conn.state === 'joining' && packet.id === JOIN_ACK_ID) {
          if (Array.isArray(packet.data) && packet.data[0] === 'ok') {
            conn.joined();
          } else {
            conn.fail(`join answered ${JSON.stringify(packet.data)}`);
          }
        }
        return null;
      case SIO.connectError:
        conn.fail(`connect_error ${JSON.stringify(packet.data)}`);
        return null;
      case SIO.disconnect:
        conn.fail('the server disconnected the Socket.IO namespace');
        return null;
      default:
        return null;
    }
  },

  /** The HTTP publish of `payload` into `session`'s room. */
  publishRequest(session, payload) {
    return {
      path: '/publish',
      headers: {},
      body: JSON.stringify({ room: session.room, data: payload }),
    };
  },

  accepted(status) {
    return status === 202;
  },
};
