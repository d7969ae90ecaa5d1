// The `switchboard` server kind: the gateway's protocol (docs/protocol.md). Sessions are
// created the way the Rust coordinator creates them: on short-lived control sockets
// that leave them again, so only the measured sockets are members. The measured
// sockets connect anonymously (as the Rust workers do), wait for `welcome`, join with
// the session key, and receive `event` frames; publishes go to `POST /v1/publish`.

import WebSocket from 'ws';

/** Sessions one control socket creates (creates + leaves stay under the default
 * per-connection frame burst of 20, as in the Rust coordinator). */
const SESSIONS_PER_CONTROL_SOCKET = 8;
/** Control sockets at work at once. */
const CONTROL_CONCURRENCY = 32;
const CONTROL_PATIENCE_MS = 20_000;

/** Open a control socket and create `count` sessions on it, then leave them. */
function createOn(addr, count) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${addr}/ws`, { perMessageDeflate: false });
    const created = [];
    let left = 0;
    let finished = false;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('creating sessions timed out'));
    }, CONTROL_PATIENCE_MS);
    const done = (error) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      ws.terminate();
      if (error) reject(error);
      else resolve(created);
    };
    const next = () => {
      if (created.length < count) {
        ws.send(JSON.stringify({ type: 'session.create', id: `c${created.length}` }));
      } else {
        for (const s of created) {
          ws.send(JSON.stringify({ type: 'session.leave', session_id: s.id }));
        }
      }
    };
    ws.on('message', (data) => {
      let frame;
      try {
        frame = JSON.parse(data.toString());
      } catch {
        done(new Error('a control frame that is not JSON'));
        return;
      }
      switch (frame.type) {
        case 'welcome':
          next();
          break;
        case 'session.created':
          created.push({ id: frame.session_id, key: frame.session_key ?? null });
          next();
          break;
        case 'session.left':
          left += 1;
          if (left === count) done();
          break;
        case 'error':
          done(new Error(`creating sessions: ${frame.code}: ${frame.message}`));
          break;
        default:
      }
    });
    ws.on('error', (e) => done(new Error(`control socket: ${e.message}`)));
    ws.on('close', () => done(new Error('the gateway closed a control socket')));
  });
}

export const switchboard = {
  name: 'switchboard',

  wsUrl(addr) {
    return `ws://${addr}/ws`;
  },

  async prepare(run) {
    const batches = [];
    for (let j = 0; j < run.opts.sessions; j += SESSIONS_PER_CONTROL_SOCKET) {
      batches.push(Math.min(SESSIONS_PER_CONTROL_SOCKET, run.opts.sessions - j));
    }
    const sessions = [];
    for (let b = 0; b < batches.length; b += CONTROL_CONCURRENCY) {
      const group = batches.slice(b, b + CONTROL_CONCURRENCY);
      for (const created of await Promise.all(group.map((n) => createOn(run.opts.addr, n)))) {
        sessions.push(...created);
      }
    }
    return sessions;
  },

  /** Handle one text frame of `conn`; returns a delivered payload or null. */
  onText(conn, text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      conn.errorFrame('a frame that is not JSON');
      return null;
    }
    const type = frame.type;
    if (type === 'event') {
      const data = frame.data;
      return conn.state === 'joined' && data !== null && typeof data === 'object' ? data : null;
    }
    if (type === 'error') {
      const why = `error frame from the gateway: ${frame.code}: ${frame.message}`;
      if (conn.state === 'joined') conn.errorFrame(why);
      else conn.fail(why);
      return null;
    }
    if (conn.state === 'open' && type === 'welcome') {
      conn.state = 'joining';
      const join = { type: 'session.join', id: 'j', session_id: conn.session.id };
      if (conn.session.key) join.session_key = conn.session.key;
      conn.send(JSON.stringify(join));
    } else if (conn.state === 'joining' && type === 'session.joined') {
      conn.joined();
    }
    return null;
  },

  publishRequest(session, payload, key) {
    return {
      path: '/v1/publish',
      headers: { authorization: `Bearer ${key}` },
      body: JSON.stringify({ target: { session: session.id }, name: 'bench', data: payload }),
    };
  },

  accepted(status) {
    return status === 202;
  },
};
