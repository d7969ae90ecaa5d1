// The HTTP transport: what the client uses when WebSockets cannot reach the gateway (a
// proxy that breaks upgrades). It looks like a WebSocket to the client — `send` takes
// client frames, `onmessage` hands back server frames, `onclose` reports a close code —
// and speaks the gateway's HTTP API underneath (docs/protocol.md §6.16, docs/widget.md):
//
// - receiving: `GET /v1/sessions/{id}/stream`, Server-Sent Events read with `fetch`
//   (so the token and the session key travel in headers, and a refusal's status and
//   JSON error are readable, which `EventSource` hides); each event's `data` is the
//   very frame a WebSocket member receives;
// - sending: `POST /v1/sessions` (create), `POST /v1/sessions/{id}/messages` (with
//   `client_message_id`, so a resend is appended once), `POST …/turns/{id}/cancel`,
//   `POST …/tool-calls/{id}/decision`.
//
// Frames the HTTP API has no route for (conversation lists, handoff, presence) answer
// `unsupported`; `typing` is dropped. The client keeps working without them.
//
// Written as closures rather than a class: the bundle has a size budget, and a
// minifier renames local variables but not private fields.

/** The close codes the transport reports (the client acts on them as on a WebSocket's). */
const ABNORMAL = 1006;
const TRY_AGAIN_LATER = 1013;
const UNAUTHORIZED = 4401;

/**
 * The base `http(s)://host[/prefix]` of a gateway from its `/ws` URL without a query
 * (`websocketUrl(gateway)`).
 */
export const httpBaseUrl = (wsUrl) => wsUrl.replace(/^ws/, 'http').slice(0, -3);

/**
 * Whether the gateway answers HTTP at all: `GET /health` without CORS (an opaque
 * answer still proves it is there). A WebSocket that fails while this succeeds means
 * something between the page and the gateway breaks upgrades. `base` is
 * [`httpBaseUrl`]'s.
 */
export async function reachable(base, fetchImpl) {
  try {
    await fetchImpl(`${base}/health`, { mode: 'no-cors', cache: 'no-store' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether a WebSocket to `url` opens (it is closed at once): how a client on HTTP
 * learns that WebSockets work again.
 */
export function websocketOpens(url, WebSocketImpl) {
  return new Promise((resolve) => {
    const ws = new WebSocketImpl(url, 'switchboard.v1');
    ws.onopen = () => {
      ws.onclose = null;
      ws.close();
      resolve(true);
    };
    ws.onclose = () => resolve(false);
  });
}

/**
 * Server-Sent Events from a `fetch` response body (the WHATWG event stream format:
 * `field: value` lines, a blank line ends an event, `:` starts a comment). Yields
 * `{event, data}` (`id` is each frame's `seq`, which the frame carries itself).
 */
export async function* readEventStream(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  let event = { data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const lines = (buffered + value).split(/\r\n|\r|\n/);
    buffered = lines.pop();
    for (const line of lines) {
      if (!line) {
        if (event.data.length) yield { event: event.event, data: event.data.join('\n') };
        event = { data: [] };
      } else if (line[0] !== ':') {
        const [, field, text] = /^([^:]*):? ?(.*)$/s.exec(line);
        if (field === 'data') event.data.push(text);
        else if (field === 'event') event.event = text;
      }
    }
  }
}

/** The JSON body of a response, or null. */
const jsonOf = (response) => response.json().catch(() => null);

/**
 * A WebSocket-shaped connection over the gateway's HTTP API: `readyState` 1 from the
 * start, `welcome` as its first frame once the gateway answers, `onclose` once, when
 * the event stream ends or cannot be read.
 * @param {string} base the gateway's [`httpBaseUrl`]
 * @param {{token?: string|null, fetch: typeof fetch}} options
 */
export function httpFallbackSocket(base, { token = null, fetch: fetchImpl }) {
  let stream = null; // {sessionId, sessionKey, lastSeq, controller}
  const keys = new Map(); // session id → key, for anonymous sessions
  let closed = false;

  // `onopen`, `onmessage`, `onclose` are the caller's to set, as on a WebSocket.
  const socket = {
    readyState: 1,
    send(text) {
      let frame;
      try {
        frame = JSON.parse(text);
      } catch {
        return;
      }
      if (!closed) handle(frame).catch((error) => reply(frame, { type: 'error', code: 'unavailable', message: String(error) }));
    },
    /** Stop for good; `onclose` is not called (as after `WebSocket.close` by its owner). */
    close() {
      closed = true;
      socket.readyState = 3;
      stopStream();
    },
  };

  const deliver = (frame) => closed || socket.onmessage?.({ data: JSON.stringify(frame) });
  const reply = (frame, answer) => deliver(frame.id ? { ...answer, re: frame.id } : answer);

  function closeWith(code, reason) {
    if (closed) return;
    socket.close();
    socket.onclose?.({ code, reason });
  }

  function stopStream() {
    stream?.controller.abort();
    stream = null;
  }

  function headers(sessionKey) {
    const h = { 'content-type': 'application/json' };
    if (token) h.authorization = `Bearer ${token}`;
    if (sessionKey) h['switchboard-session-key'] = sessionKey;
    return h;
  }

  const sessionPath = (id, rest = '') => `/v1/sessions/${encodeURIComponent(id)}${rest}`;

  /** `POST path` with a JSON body into `sessionId` (its key, when it is streamed). */
  async function post(path, body, sessionId) {
    const response = await fetchImpl(base + path, { method: 'POST', headers: headers(keys.get(sessionId)), body: JSON.stringify(body) });
    return { response, json: await jsonOf(response) };
  }

  /** A refusal as the `error` frame a WebSocket would have answered (401: close 4401). */
  function refused(frame, { response, json }) {
    if (response.status === 401) return closeWith(UNAUTHORIZED, json?.error?.message);
    const retry = Number(response.headers.get('retry-after'));
    reply(frame, {
      type: 'error',
      code: json?.error?.code || 'internal',
      message: json?.error?.message || `HTTP ${response.status}`,
      retry_after_ms: retry * 1000 || undefined,
    });
  }

  async function handle(frame) {
    const { type, session_id: sessionId } = frame;
    let answer;
    switch (type) {
      case 'ping':
        return reply(frame, { type: 'pong' });
      case 'typing':
        return undefined;
      case 'auth.refresh':
        // A stream ends at its token's `exp`: reopen it with the new one, resuming.
        token = frame.token;
        reply(frame, { type: 'auth.refreshed' });
        return stream && openStream(stream.sessionId, stream.sessionKey, stream.lastSeq, null);
      case 'session.create':
        answer = await post('/v1/sessions', frame.metadata ? { metadata: frame.metadata } : {});
        if (!answer.response.ok) return refused(frame, answer);
        openStream(answer.json.session_id, answer.json.session_key, answer.json.seq, null);
        return reply(frame, { ...answer.json, type: 'session.created' });
      case 'session.join':
        return openStream(sessionId, frame.session_key, frame.after_seq, frame);
      case 'session.leave':
        if (stream?.sessionId === sessionId) stopStream();
        return reply(frame, { type: 'session.left', session_id: sessionId });
      case 'message.send':
        answer = await post(sessionPath(sessionId, '/messages'), { text: frame.text, client_message_id: frame.client_message_id }, sessionId);
        if (!answer.response.ok) return refused(frame, answer);
        return reply(frame, { ...answer.json, type: 'message.accepted' });
      case 'turn.cancel':
        // Answered by the turn's `turn.end` (cancelled), as over the WebSocket.
        answer = await post(sessionPath(sessionId, `/turns/${encodeURIComponent(frame.turn_id)}/cancel`), {}, sessionId);
        return answer.response.ok || refused(frame, answer);
      case 'tool.decide':
        answer = await post(sessionPath(sessionId, `/tool-calls/${encodeURIComponent(frame.call_id)}/decision`), { approved: Boolean(frame.approved) }, sessionId);
        if (!answer.response.ok) return refused(frame, answer);
        return reply(frame, { ...answer.json, type: 'tool.decided' });
      default:
        return reply(frame, { type: 'error', code: 'unsupported', message: `${type} needs a WebSocket` });
    }
  }

  /**
   * Read `sessionId`'s events after `afterSeq`; `join` (a `session.join` frame) hears
   * `session.joined` or the refusal. One stream at a time: the client has one session.
   */
  function openStream(sessionId, sessionKey, afterSeq, join) {
    stopStream();
    if (sessionKey) keys.set(sessionId, sessionKey);
    const mine = { sessionId, sessionKey, lastSeq: afterSeq, controller: new AbortController() };
    stream = mine;
    readStream(mine, join).catch((error) => stream === mine && closeWith(ABNORMAL, String(error)));
  }

  async function readStream(mine, join) {
    const query = mine.lastSeq == null ? '' : `?after_seq=${mine.lastSeq}`;
    const response = await fetchImpl(base + sessionPath(mine.sessionId, `/stream${query}`), {
      headers: headers(mine.sessionKey),
      signal: mine.controller.signal,
    });
    if (stream !== mine) return;
    if (!response.ok) {
      // A join answers like `session.join` (404: the client starts over); a new
      // session's stream that cannot open is retried on a new connection.
      const answer = { response, json: await jsonOf(response) };
      return join ? refused(join, answer) : closeWith(response.status === 401 ? UNAUTHORIZED : TRY_AGAIN_LATER, answer.json?.error?.message);
    }
    let close = {};
    for await (const event of readEventStream(response.body)) {
      if (stream !== mine) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        continue;
      }
      if (event.event === 'close') close = frame;
      else if (frame.type === 'session.joined') {
        if (join) reply(join, frame);
        join = null;
      } else {
        if (typeof frame.seq === 'number') mine.lastSeq = frame.seq;
        deliver(frame);
      }
    }
    if (stream === mine) closeWith(close.code || ABNORMAL, close.reason);
  }

  // Welcome once the gateway answers, after the caller has set its handlers.
  reachable(base, fetchImpl).then((ok) => {
    if (!ok) return closeWith(ABNORMAL);
    if (closed) return;
    socket.onopen?.({});
    deliver({ type: 'welcome', transport: 'http' });
  });
  return socket;
}
