// @switchboard/client 0.1.0: built from widget/src/client.js and widget/src/fallback.js
// by clients/js/scripts/build.mjs (npm run build). Do not edit: edit the widget's sources.

// ../../widget/src/fallback.js
var ABNORMAL = 1006;
var TRY_AGAIN_LATER = 1013;
var UNAUTHORIZED = 4401;
var httpBaseUrl = (wsUrl) => wsUrl.replace(/^ws/, "http").slice(0, -3);
async function reachable(base, fetchImpl) {
  try {
    await fetchImpl(`${base}/health`, { mode: "no-cors", cache: "no-store" });
    return true;
  } catch {
    return false;
  }
}
function websocketOpens(url, WebSocketImpl) {
  return new Promise((resolve) => {
    const ws = new WebSocketImpl(url, "switchboard.v1");
    ws.onopen = () => {
      ws.onclose = null;
      ws.close();
      resolve(true);
    };
    ws.onclose = () => resolve(false);
  });
}
async function* readEventStream(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let event = { data: [] };
  for (; ; ) {
    const { value, done } = await reader.read();
    if (done) return;
    const lines = (buffered + value).split(/\r\n|\r|\n/);
    buffered = lines.pop();
    for (const line of lines) {
      if (!line) {
        if (event.data.length) yield { event: event.event, data: event.data.join("\n") };
        event = { data: [] };
      } else if (line[0] !== ":") {
        const [, field, text] = /^([^:]*):? ?(.*)$/s.exec(line);
        if (field === "data") event.data.push(text);
        else if (field === "event") event.event = text;
      }
    }
  }
}
var jsonOf = (response) => response.json().catch(() => null);
function httpFallbackSocket(base, { token = null, fetch: fetchImpl }) {
  let stream = null;
  const keys = /* @__PURE__ */ new Map();
  let closed = false;
  const socket = {
    readyState: 1,
    send(text) {
      let frame;
      try {
        frame = JSON.parse(text);
      } catch {
        return;
      }
      if (!closed) handle(frame).catch((error) => reply(frame, { type: "error", code: "unavailable", message: String(error) }));
    },
    /** Stop for good; `onclose` is not called (as after `WebSocket.close` by its owner). */
    close() {
      closed = true;
      socket.readyState = 3;
      stopStream();
    }
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
    const h = { "content-type": "application/json" };
    if (token) h.authorization = `Bearer ${token}`;
    if (sessionKey) h["switchboard-session-key"] = sessionKey;
    return h;
  }
  const sessionPath = (id, rest = "") => `/v1/sessions/${encodeURIComponent(id)}${rest}`;
  async function post(path, body, sessionId) {
    const response = await fetchImpl(base + path, { method: "POST", headers: headers(keys.get(sessionId)), body: JSON.stringify(body) });
    return { response, json: await jsonOf(response) };
  }
  function refused(frame, { response, json }) {
    if (response.status === 401) return closeWith(UNAUTHORIZED, json?.error?.message);
    const retry = Number(response.headers.get("retry-after"));
    reply(frame, {
      type: "error",
      code: json?.error?.code || "internal",
      message: json?.error?.message || `HTTP ${response.status}`,
      retry_after_ms: retry * 1e3 || void 0
    });
  }
  async function handle(frame) {
    const { type, session_id: sessionId } = frame;
    let answer;
    switch (type) {
      case "ping":
        return reply(frame, { type: "pong" });
      case "typing":
        return void 0;
      case "auth.refresh":
        token = frame.token;
        reply(frame, { type: "auth.refreshed" });
        return stream && openStream(stream.sessionId, stream.sessionKey, stream.lastSeq, null);
      case "session.create":
        answer = await post("/v1/sessions", frame.metadata ? { metadata: frame.metadata } : {});
        if (!answer.response.ok) return refused(frame, answer);
        openStream(answer.json.session_id, answer.json.session_key, answer.json.seq, null);
        return reply(frame, { ...answer.json, type: "session.created" });
      case "session.join":
        return openStream(sessionId, frame.session_key, frame.after_seq, frame);
      case "session.leave":
        if (stream?.sessionId === sessionId) stopStream();
        return reply(frame, { type: "session.left", session_id: sessionId });
      case "message.send":
        answer = await post(sessionPath(sessionId, "/messages"), { text: frame.text, client_message_id: frame.client_message_id }, sessionId);
        if (!answer.response.ok) return refused(frame, answer);
        return reply(frame, { ...answer.json, type: "message.accepted" });
      case "turn.cancel":
        answer = await post(sessionPath(sessionId, `/turns/${encodeURIComponent(frame.turn_id)}/cancel`), {}, sessionId);
        return answer.response.ok || refused(frame, answer);
      case "tool.decide":
        answer = await post(sessionPath(sessionId, `/tool-calls/${encodeURIComponent(frame.call_id)}/decision`), { approved: Boolean(frame.approved) }, sessionId);
        if (!answer.response.ok) return refused(frame, answer);
        return reply(frame, { ...answer.json, type: "tool.decided" });
      default:
        return reply(frame, { type: "error", code: "unsupported", message: `${type} needs a WebSocket` });
    }
  }
  function openStream(sessionId, sessionKey, afterSeq, join) {
    stopStream();
    if (sessionKey) keys.set(sessionId, sessionKey);
    const mine = { sessionId, sessionKey, lastSeq: afterSeq, controller: new AbortController() };
    stream = mine;
    readStream(mine, join).catch((error) => stream === mine && closeWith(ABNORMAL, String(error)));
  }
  async function readStream(mine, join) {
    const query = mine.lastSeq == null ? "" : `?after_seq=${mine.lastSeq}`;
    const response = await fetchImpl(base + sessionPath(mine.sessionId, `/stream${query}`), {
      headers: headers(mine.sessionKey),
      signal: mine.controller.signal
    });
    if (stream !== mine) return;
    if (!response.ok) {
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
      if (event.event === "close") close = frame;
      else if (frame.type === "session.joined") {
        if (join) reply(join, frame);
        join = null;
      } else {
        if (typeof frame.seq === "number") mine.lastSeq = frame.seq;
        deliver(frame);
      }
    }
    if (stream === mine) closeWith(close.code || ABNORMAL, close.reason);
  }
  reachable(base, fetchImpl).then((ok) => {
    if (!ok) return closeWith(ABNORMAL);
    if (closed) return;
    socket.onopen?.({});
    deliver({ type: "welcome", transport: "http" });
  });
  return socket;
}

// ../../widget/src/client.js
var SESSION_EVENT_TYPES = /* @__PURE__ */ new Set([
  "message",
  "turn.start",
  "turn.delta",
  "tool.request",
  "tool.result",
  "turn.end",
  "event",
  "handoff"
]);
var CloseCodes = Object.freeze({
  NORMAL: 1e3,
  TOO_BIG: 1009,
  DRAINING: 1012,
  HEARTBEAT_TIMEOUT: 4e3,
  SLOW_CONSUMER: 4008,
  TOO_MANY_BAD_FRAMES: 4029,
  UNAUTHORIZED: 4401
});
var RETRYABLE_SEND_ERRORS = /* @__PURE__ */ new Set(["rate_limited", "unavailable", "internal", "forbidden"]);
var DEFAULT_BACKOFF = Object.freeze({ initialMs: 500, maxMs: 15e3, factor: 2 });
var MAX_UNAUTHORIZED_IN_A_ROW = 3;
var FALLBACK_AFTER_FAILURES = 2;
var DEFAULT_WEBSOCKET_PROBE_MS = 6e4;
function backoffDelay(attempt, backoff = DEFAULT_BACKOFF, random = Math.random) {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * backoff.factor ** attempt);
  return Math.round(ceiling / 2 + random() * ceiling / 2);
}
var MAX_RETRY_AFTER_MS = 10 * 60 * 1e3;
function retryDelay(attempt, backoff = DEFAULT_BACKOFF, retryAfterMs = 0, random = Math.random) {
  const asked = Number.isFinite(retryAfterMs) && retryAfterMs > 0 ? Math.min(retryAfterMs, MAX_RETRY_AFTER_MS) : 0;
  return Math.max(backoffDelay(attempt, backoff, random), Math.ceil(asked));
}
function websocketUrl(gateway, token) {
  const base = typeof location === "undefined" ? void 0 : location.href;
  const url = new URL(gateway, base);
  if (url.protocol === "https:") url.protocol = "wss:";
  else if (url.protocol === "http:") url.protocol = "ws:";
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new TypeError(`gateway must be an http(s) or ws(s) URL, not ${gateway}`);
  }
  if (!url.pathname.endsWith("/ws")) {
    url.pathname = `${url.pathname.replace(/\/+$/, "")}/ws`;
  }
  url.search = "";
  url.hash = "";
  if (token) url.searchParams.set("token", token);
  return url.toString();
}
function tokenExpiry(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length < 2) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - base64.length % 4) % 4);
    const claims = JSON.parse(atob(padded));
    return typeof claims.exp === "number" ? claims.exp : null;
  } catch {
    return null;
  }
}
function refreshDelay(expiresAtMs, nowMs) {
  const remaining = expiresAtMs - nowMs;
  const margin = Math.min(6e4, Math.max(3e3, remaining / 4));
  return Math.max(0, remaining - margin);
}
function requestError(code, message) {
  const error = new Error(message || code);
  error.code = code;
  return error;
}
function randomId(prefix) {
  if (globalThis.crypto?.randomUUID) return `${prefix}${globalThis.crypto.randomUUID().replace(/-/g, "")}`;
  let id = "";
  for (let i = 0; i < 32; i += 1) id += Math.floor(Math.random() * 16).toString(16);
  return `${prefix}${id}`;
}
var SwitchboardClient = class extends EventTarget {
  #gateway;
  #staticToken;
  #tokenProvider;
  #storage;
  #storageKey;
  #backoff;
  #WebSocketImpl;
  #metadata;
  #fallback;
  #fetch;
  #websocketProbeMs;
  #transport = "websocket";
  #websocketFailures = 0;
  #probeTimer = null;
  #assistant;
  #socket = null;
  #connectionNumber = 0;
  #state = "idle";
  #attempt = 0;
  #unauthorizedInARow = 0;
  #retryTimer = null;
  #heartbeatTimer = null;
  #refreshTimer = null;
  #lastReceivedAt = 0;
  #heartbeatMs = 25e3;
  #goaway = false;
  #stopped = true;
  #everOnline = false;
  #token = null;
  #tokenExpiresAt = null;
  #principal = null;
  #limits = null;
  #sessionId = null;
  #sessionKey = null;
  #lastSeq = null;
  #joined = false;
  #creating = false;
  #nextFrameId = 1;
  #pending = /* @__PURE__ */ new Map();
  #outbox = [];
  #flushTimer = null;
  #onOnline = () => this.reconnectNow();
  #onOffline = () => this.#goOffline();
  #onStorage = (event) => this.#adoptSessionFromOtherTab(event);
  /**
   * @param {object} options
   * @param {string} options.gateway gateway base URL, e.g. `https://chat.example.com`
   * @param {string} [options.token] a JWT (without a provider it is never refreshed)
   * @param {() => Promise<string>|string} [options.tokenProvider] returns a fresh JWT;
   *   called before each connection and ahead of each token's `exp`
   * @param {Storage|null} [options.storage] where the session id, key and unsent
   *   messages are kept (e.g. `localStorage`); `null` keeps them in memory only
   * @param {string} [options.storageKey] which conversation this is, per gateway
   * @param {{initialMs:number,maxMs:number,factor:number}} [options.backoff]
   * @param {object} [options.metadata] sent with `session.create`
   * @param {string} [options.assistant] the org's named assistant new conversations
   *   talk to (`session.create`'s `assistant`); absent: the default assistant
   * @param {typeof WebSocket} [options.WebSocket] a WebSocket implementation
   * @param {boolean} [options.fallback] carry on over HTTP (SSE and REST) when
   *   WebSockets cannot connect but HTTP can (default true)
   * @param {number} [options.websocketProbeMs] on HTTP, how often to try a WebSocket
   *   again (default 60 s)
   * @param {typeof fetch} [options.fetch] a fetch implementation (the HTTP transport)
   */
  constructor(options = {}) {
    super();
    if (!options.gateway) throw new TypeError("SwitchboardClient: `gateway` is required");
    this.#gateway = options.gateway;
    websocketUrl(this.#gateway);
    this.#staticToken = options.token || null;
    this.#tokenProvider = options.tokenProvider || null;
    this.#storage = options.storage ?? null;
    this.#storageKey = `switchboard:v1:${new URL(websocketUrl(this.#gateway)).href}|${options.storageKey || "default"}`;
    this.#backoff = { ...DEFAULT_BACKOFF, ...options.backoff || {} };
    this.#WebSocketImpl = options.WebSocket || globalThis.WebSocket;
    this.#metadata = options.metadata;
    this.#fetch = options.fetch || (globalThis.fetch ? globalThis.fetch.bind(globalThis) : null);
    this.#fallback = options.fallback !== false && Boolean(this.#fetch);
    this.#websocketProbeMs = options.websocketProbeMs ?? DEFAULT_WEBSOCKET_PROBE_MS;
    this.#assistant = options.assistant || null;
    this.#restore();
  }
  /** `idle`, `connecting`, `online`, `reconnecting`, `offline`, `unauthorized` or `stopped`. */
  get state() {
    return this.#state;
  }
  get sessionId() {
    return this.#sessionId;
  }
  /** `websocket`, or `http` while WebSockets cannot connect (SSE and REST). */
  get transport() {
    return this.#transport;
  }
  /** The `seq` of the last session event delivered. */
  get lastSeq() {
    return this.#lastSeq;
  }
  /** The connection's principal from `welcome` (null before the first). */
  get principal() {
    return this.#principal;
  }
  /** The limits from `welcome` (null before the first). */
  get limits() {
    return this.#limits;
  }
  /** Messages not yet acknowledged by the gateway: `[{client_message_id, text}]`. */
  get outbox() {
    return this.#outbox.map(({ client_message_id, text }) => ({ client_message_id, text }));
  }
  /** Connect, and stay connected until `stop()`. */
  start() {
    if (!this.#stopped) return;
    this.#stopped = false;
    if (typeof window !== "undefined" && window.addEventListener) {
      window.addEventListener("online", this.#onOnline);
      window.addEventListener("offline", this.#onOffline);
      window.addEventListener("storage", this.#onStorage);
    }
    for (const item of this.#outbox) this.#emit("outbox", { ...this.#describe(item), state: "queued" });
    if (this.#isOffline()) {
      this.#goOffline();
    } else {
      this.#connect();
    }
  }
  /** Close the connection for good. Unsent messages stay in storage for next time. */
  stop() {
    this.#stopped = true;
    if (typeof window !== "undefined" && window.removeEventListener) {
      window.removeEventListener("online", this.#onOnline);
      window.removeEventListener("offline", this.#onOffline);
      window.removeEventListener("storage", this.#onStorage);
    }
    this.#clearTimers();
    const socket = this.#socket;
    this.#socket = null;
    if (socket) this.#detach(socket, CloseCodes.NORMAL);
    this.#failPending("stopped", "the client was stopped");
    this.#setState("stopped");
  }
  /** Reconnect now, skipping the backoff wait (e.g. when the network came back). */
  reconnectNow() {
    if (this.#stopped) return;
    if (this.#socket && this.#state === "online") return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    if (this.#socket) return;
    this.#connect();
  }
  /**
   * Send a user message. It is queued (and kept in storage) until the gateway accepts
   * it, resent after reconnects with the same `client_message_id`, so it is appended
   * once. A session is created on the first send when there is none.
   * @returns {Promise<{message_id:string, seq:number, client_message_id:string}>}
   */
  send(text, { clientMessageId } = {}) {
    const body = String(text ?? "");
    if (!body.trim()) return Promise.reject(new Error("the message is empty"));
    const item = {
      client_message_id: clientMessageId || randomId("cm_"),
      text: body,
      sentOn: 0,
      frameId: null,
      resolve: null,
      reject: null
    };
    const accepted = new Promise((resolve, reject) => {
      item.resolve = resolve;
      item.reject = reject;
    });
    this.#outbox.push(item);
    this.#persist();
    this.#emit("outbox", { ...this.#describe(item), state: "queued" });
    this.#flush();
    return accepted;
  }
  /** Ask the gateway to stop a running turn (answered by its `turn.end`, `cancelled`). */
  cancelTurn(turnId) {
    if (!this.#sessionId) return false;
    return this.#sendFrame({ type: "turn.cancel", session_id: this.#sessionId, turn_id: turnId });
  }
  /**
   * Tell the session's other members this user is typing (`true`) or stopped (`false`).
   * No reply; the gateway forwards at most one `true` per 2 s. False when not joined.
   */
  typing(isTyping) {
    if (!this.#sessionId || !this.#joined) return false;
    return Boolean(this.#sendFrame({ type: "typing", session_id: this.#sessionId, typing: Boolean(isTyping) }, { withId: false }));
  }
  /** Approve or refuse a tool call (`tool.request`); answered by a `tool.decided` event. */
  decideTool(callId, approved) {
    if (!this.#sessionId) return false;
    return this.#sendFrame({
      type: "tool.decide",
      session_id: this.#sessionId,
      call_id: callId,
      approved: Boolean(approved)
    });
  }
  /** Replace the token now (sent as `auth.refresh` when connected, used to reconnect). */
  setToken(token) {
    this.#staticToken = token;
    if (this.#state === "online") this.#sendRefresh(token);
  }
  /** Forget the current session: the next `send` starts a new conversation. */
  forgetSession() {
    if (this.#sessionId && this.#joined) {
      this.#sendFrame({ type: "session.leave", session_id: this.#sessionId });
    }
    this.#sessionId = null;
    this.#sessionKey = null;
    this.#lastSeq = null;
    this.#joined = false;
    this.#persist();
  }
  /**
   * Ask for a person to take the conversation over (`handoff.request`); starts the
   * conversation first when there is none yet.
   * @param {string} [reason] what the customer needs, for the operator
   * @returns {Promise<{state:string, operator?:object, reason?:string, since:number}>}
   *   the conversation's handoff after the request
   */
  async requestHandoff(reason) {
    if (!this.#sessionId) await this.newSession();
    const frame = { type: "handoff.request", session_id: this.#sessionId };
    if (reason) frame.reason = String(reason);
    return (await this.#ask(frame, "handoff.updated")).handoff;
  }
  // ---- conversations of a signed-in user (docs/protocol.md §3.13) ----
  /** Whether the connection is a signed-in user (a JWT with `sub`), who has a list. */
  get signedIn() {
    return Boolean(this.#principal && !this.#principal.anonymous && this.#principal.user_id);
  }
  /**
   * Start a new conversation now (`session.create`) and make it the current one.
   * @returns {Promise<{session_id:string, seq:number}>}
   */
  newSession() {
    if (this.#outbox.length) return Promise.reject(requestError("busy", "a message is still being sent"));
    this.forgetSession();
    return new Promise((resolve, reject) => {
      if (!this.#create((reply) => reply.type === "session.created" ? resolve(reply) : reject(requestError(reply.code, reply.message)))) {
        reject(requestError("disconnected", "not connected"));
      }
    });
  }
  /**
   * Make another of the user's conversations the current one: leave this one, join that
   * one with `after_seq: 0` (its whole history is replayed as `event`s).
   * @returns {Promise<{session_id:string, last_seq:number, recovered:boolean}>}
   */
  openSession(sessionId) {
    if (this.#outbox.length) return Promise.reject(requestError("busy", "a message is still being sent"));
    if (this.#state !== "online") return Promise.reject(requestError("disconnected", "not connected"));
    this.forgetSession();
    this.#sessionId = sessionId;
    this.#persist();
    return new Promise((resolve, reject) => {
      this.#join({ fromStart: true, onDone: (reply) => reply.type === "session.joined" ? resolve(reply) : reject(requestError(reply.code, reply.message)) });
    });
  }
  /**
   * One page of the user's conversations, newest activity first (`session.list`).
   * @param {{state?:'active'|'archived', cursor?:string, limit?:number}} [options]
   * @returns {Promise<{sessions:object[], next_cursor?:string}>}
   */
  listSessions({ state, cursor, limit } = {}) {
    const frame = { type: "session.list", scope: "mine" };
    if (state) frame.state = state;
    if (cursor) frame.cursor = cursor;
    if (limit) frame.limit = limit;
    return this.#ask(frame, "session.listed");
  }
  /**
   * Rename, archive or unarchive a conversation (`session.update`).
   * @returns {Promise<object>} the conversation's summary after the change
   */
  async updateSession(sessionId, { title, state } = {}) {
    const frame = { type: "session.update", session_id: sessionId };
    if (title !== void 0) frame.title = title;
    if (state !== void 0) frame.state = state;
    return (await this.#ask(frame, "session.updated")).session;
  }
  /**
   * Delete a conversation for good (`session.delete`). Deleting the current one
   * leaves it first, so the next `send` starts a new conversation.
   */
  async deleteSession(sessionId) {
    if (sessionId === this.#sessionId) this.forgetSession();
    await this.#ask({ type: "session.delete", session_id: sessionId }, "session.deleted");
  }
  /**
   * A conversation's transcript as text (`session.export`).
   * @param {'json'|'markdown'} [format]
   * @returns {Promise<{session_id:string, format:string, content:string}>}
   */
  exportSession(sessionId, format = "markdown") {
    return this.#ask({ type: "session.export", session_id: sessionId, format }, "session.exported");
  }
  /** Send a request frame; resolve with its `replyType` reply, reject with its error. */
  #ask(frame, replyType) {
    return new Promise((resolve, reject) => {
      const sent = this.#request(frame, (reply) => {
        if (reply.type === replyType) resolve(reply);
        else reject(requestError(reply.code || "internal", reply.message || `unexpected ${reply.type}`));
      });
      if (!sent) reject(requestError("disconnected", "not connected"));
    });
  }
  // ---- connection lifecycle ----
  async #connect() {
    const connectionNumber = ++this.#connectionNumber;
    this.#setState(this.#everOnline ? "reconnecting" : "connecting");
    let token;
    try {
      token = await this.#freshToken();
    } catch (error) {
      if (connectionNumber !== this.#connectionNumber || this.#stopped) return;
      this.#emit("error", { code: "token_provider", message: `the token provider failed: ${error?.message || error}` });
      this.#scheduleReconnect("token provider failed");
      return;
    }
    if (connectionNumber !== this.#connectionNumber || this.#stopped) return;
    this.#token = token;
    const overHttp = this.#transport === "http";
    let socket;
    try {
      socket = overHttp ? httpFallbackSocket(httpBaseUrl(websocketUrl(this.#gateway)), { token, fetch: this.#fetch }) : new this.#WebSocketImpl(websocketUrl(this.#gateway, token), "switchboard.v1");
    } catch (error) {
      this.#emit("error", { code: "connect", message: String(error?.message || error) });
      this.#scheduleReconnect("cannot open a WebSocket");
      return;
    }
    this.#socket = socket;
    this.#joined = false;
    this.#creating = false;
    this.#goaway = false;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      if (!overHttp) this.#websocketFailures = 0;
    };
    socket.onmessage = (message) => {
      opened = true;
      if (this.#socket === socket) this.#onFrame(message.data);
    };
    socket.onclose = (close) => {
      if (this.#socket !== socket) return;
      if (!overHttp && !opened) this.#websocketFailed();
      this.#onClosed(close.code, close.reason);
    };
    socket.onerror = () => {
    };
  }
  // ---- the HTTP transport: used while WebSockets fail to open but HTTP works ----
  /** A WebSocket closed before it opened: is something breaking upgrades? */
  async #websocketFailed() {
    if (!this.#fallback) return;
    const failures = ++this.#websocketFailures;
    if (failures < FALLBACK_AFTER_FAILURES) return;
    if (!await reachable(httpBaseUrl(websocketUrl(this.#gateway)), this.#fetch)) {
      this.#websocketFailures = 0;
      return;
    }
    if (this.#stopped || this.#transport === "http" || this.#websocketFailures < failures) return;
    this.#useTransport("http");
    if (this.#retryTimer) this.reconnectNow();
  }
  #useTransport(transport) {
    if (this.#transport === transport) return;
    this.#transport = transport;
    this.#websocketFailures = 0;
    this.#scheduleProbe();
  }
  /** On HTTP, try a WebSocket now and then; once one opens, reconnect over it. */
  #scheduleProbe() {
    clearTimeout(this.#probeTimer);
    if (this.#transport !== "http" || !(this.#websocketProbeMs > 0)) return;
    this.#probeTimer = setTimeout(async () => {
      const opens = await websocketOpens(websocketUrl(this.#gateway, this.#token), this.#WebSocketImpl);
      if (this.#stopped || this.#transport !== "http") return;
      if (!opens) return this.#scheduleProbe();
      this.#useTransport("websocket");
      const socket = this.#socket;
      if (!socket) return this.reconnectNow();
      this.#socket = null;
      this.#detach(socket, CloseCodes.NORMAL);
      this.#onClosed(CloseCodes.DRAINING);
    }, this.#websocketProbeMs);
  }
  async #freshToken() {
    if (this.#tokenProvider) {
      const token = await this.#tokenProvider();
      if (typeof token !== "string" || !token) throw new Error("the token provider returned no token");
      return token;
    }
    return this.#staticToken;
  }
  #onClosed(code, reason) {
    this.#socket = null;
    this.#joined = false;
    this.#creating = false;
    this.#stopHeartbeat();
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = null;
    this.#failPending("disconnected", "the connection closed before the gateway answered");
    if (this.#stopped) return;
    if (code === CloseCodes.UNAUTHORIZED) {
      this.#unauthorizedInARow += 1;
      if (!this.#tokenProvider || this.#unauthorizedInARow >= MAX_UNAUTHORIZED_IN_A_ROW) {
        this.#setState("unauthorized", { reason: reason || "the gateway refused the token" });
        return;
      }
    }
    if (this.#isOffline()) {
      this.#goOffline();
      return;
    }
    if (this.#goaway || code === CloseCodes.DRAINING) {
      this.#goaway = false;
      this.#scheduleReconnect("the gateway is draining", Math.round(Math.random() * 250));
      return;
    }
    this.#scheduleReconnect(reason || `connection closed (${code})`);
  }
  #scheduleReconnect(reason, delayMs) {
    if (this.#stopped) return;
    clearTimeout(this.#retryTimer);
    const wait = delayMs ?? backoffDelay(this.#attempt, this.#backoff);
    this.#attempt += 1;
    this.#setState("reconnecting", { reason, retryInMs: wait });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (!this.#stopped && !this.#socket) this.#connect();
    }, wait);
  }
  #goOffline() {
    if (this.#stopped) return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    const socket = this.#socket;
    if (socket) {
      this.#socket = null;
      this.#detach(socket, CloseCodes.NORMAL);
      this.#onClosed(CloseCodes.NORMAL, "the browser is offline");
      return;
    }
    this.#setState("offline", { reason: "the browser is offline" });
  }
  #isOffline() {
    return typeof navigator !== "undefined" && navigator.onLine === false;
  }
  /** Drop a socket whose handlers should no longer run, closing it if it can. */
  #detach(socket, code) {
    socket.onopen = null;
    socket.onmessage = null;
    socket.onclose = null;
    socket.onerror = null;
    try {
      socket.close(code);
    } catch {
    }
  }
  #clearTimers() {
    clearTimeout(this.#probeTimer);
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#refreshTimer);
    clearTimeout(this.#flushTimer);
    this.#retryTimer = null;
    this.#refreshTimer = null;
    this.#flushTimer = null;
    this.#stopHeartbeat();
  }
  // ---- heartbeat: browsers answer the server's pings but cannot see them, so an
  // idle client pings too, and a socket silent for two intervals is given up.
  #startHeartbeat() {
    this.#stopHeartbeat();
    const interval = Math.max(1e3, Math.min(this.#heartbeatMs, 25e3));
    this.#heartbeatTimer = setInterval(() => {
      const silentFor = Date.now() - this.#lastReceivedAt;
      if (silentFor > interval * 2 + 5e3) {
        const socket = this.#socket;
        if (socket) {
          this.#detach(socket, CloseCodes.NORMAL);
          this.#onClosed(CloseCodes.HEARTBEAT_TIMEOUT, "no answer from the gateway");
        }
      } else if (silentFor >= interval) {
        this.#sendFrame({ type: "ping" });
      }
    }, interval);
  }
  #stopHeartbeat() {
    clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = null;
  }
  // ---- frames ----
  #sendFrame(frame, { withId = true } = {}) {
    const socket = this.#socket;
    if (!socket || socket.readyState !== 1) return false;
    const full = withId && !frame.id ? { id: `f${this.#nextFrameId++}`, ...frame } : frame;
    socket.send(JSON.stringify(full));
    return full.id || true;
  }
  #request(frame, onReply) {
    const id = this.#sendFrame(frame);
    if (id && typeof id === "string") this.#pending.set(id, onReply);
    return id;
  }
  #failPending(code, message) {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const onReply of pending) onReply({ type: "error", code, message });
  }
  #onFrame(data) {
    this.#lastReceivedAt = Date.now();
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    if (frame.re && this.#pending.has(frame.re)) {
      const onReply = this.#pending.get(frame.re);
      this.#pending.delete(frame.re);
      onReply(frame);
      return;
    }
    if (SESSION_EVENT_TYPES.has(frame.type)) {
      this.#onEvent(frame);
      return;
    }
    switch (frame.type) {
      case "welcome":
        this.#onWelcome(frame);
        break;
      case "goaway":
        this.#goaway = true;
        this.#emit("goaway", frame);
        break;
      case "tool.decided":
        this.#emit("tool.decided", frame);
        break;
      case "presence":
      case "presence.changed":
        if (frame.session_id === this.#sessionId) this.#emit("presence", frame);
        break;
      case "typing":
        if (frame.session_id === this.#sessionId) this.#emit("typing", frame);
        break;
      case "error":
        this.#emit("error", frame);
        break;
      default:
        break;
    }
  }
  #onWelcome(frame) {
    this.#principal = frame.principal || null;
    this.#limits = frame.limits || null;
    this.#heartbeatMs = frame.heartbeat_ms || 25e3;
    this.#unauthorizedInARow = 0;
    this.#emit("welcome", frame);
    this.#startHeartbeat();
    this.#scheduleRefresh(this.#token ? tokenExpiry(this.#token) : null);
    if (this.#sessionId) {
      this.#join();
    } else {
      this.#becomeOnline();
      if (this.#outbox.length) this.#create();
    }
  }
  #becomeOnline() {
    this.#attempt = 0;
    this.#everOnline = true;
    this.#setState("online");
  }
  /**
   * Join the current session: resume after the last `seq` delivered, or (`fromStart`,
   * switching conversations) replay it all. `onDone` hears the reply.
   */
  #join({ fromStart = false, onDone = null } = {}) {
    const sessionId = this.#sessionId;
    const frame = { type: "session.join", session_id: sessionId };
    if (this.#sessionKey) frame.session_key = this.#sessionKey;
    if (this.#lastSeq !== null) frame.after_seq = this.#lastSeq;
    else if (fromStart) frame.after_seq = 0;
    const resumed = this.#lastSeq !== null;
    const sent = this.#request(frame, (reply) => {
      onDone?.(reply);
      if (sessionId !== this.#sessionId) {
        if (reply.type === "session.joined") this.#sendFrame({ type: "session.leave", session_id: sessionId });
        return;
      }
      if (reply.type === "session.joined") {
        this.#joined = true;
        this.#becomeOnline();
        this.#emit("session", {
          session_id: reply.session_id,
          created: false,
          resumed,
          recovered: reply.recovered,
          last_seq: reply.last_seq
        });
        this.#flush();
      } else if (reply.code === "not_found") {
        this.#sessionId = null;
        this.#sessionKey = null;
        this.#lastSeq = null;
        this.#persist();
        this.#emit("reset", { reason: reply.message });
        this.#becomeOnline();
        if (this.#outbox.length) this.#create();
      } else if (reply.type === "error" && reply.code !== "disconnected" && reply.code !== "stopped") {
        const socket = this.#socket;
        if (socket) {
          this.#detach(socket, CloseCodes.NORMAL);
          this.#onClosed(1011, reply.message);
        }
      }
    });
    if (!sent) onDone?.({ type: "error", code: "disconnected", message: "not connected" });
  }
  /** Create a session (unless one is being created); `onDone` hears the reply. */
  #create(onDone = null) {
    if (this.#creating || this.#sessionId) return false;
    this.#creating = true;
    const frame = { type: "session.create" };
    if (this.#metadata) frame.metadata = this.#metadata;
    if (this.#assistant) frame.assistant = this.#assistant;
    const sent = this.#request(frame, (reply) => {
      this.#creating = false;
      onDone?.(reply);
      if (reply.type === "session.created" && this.#sessionId) {
        this.#sendFrame({ type: "session.leave", session_id: reply.session_id });
      } else if (reply.type === "session.created") {
        this.#sessionId = reply.session_id;
        this.#sessionKey = reply.session_key || null;
        this.#lastSeq = typeof reply.seq === "number" ? reply.seq : null;
        this.#joined = true;
        this.#persist();
        this.#emit("session", { session_id: reply.session_id, created: true, resumed: false, recovered: true, last_seq: reply.seq });
        this.#flush();
      } else if (reply.type === "error" && reply.code !== "disconnected" && reply.code !== "stopped") {
        this.#emit("error", reply);
        this.#retryFlushLater(reply.retry_after_ms);
      }
    });
    if (!sent) this.#creating = false;
    return Boolean(sent);
  }
  #onEvent(event) {
    if (event.stream && !event.session_id) {
      this.#emit("event", event);
      return;
    }
    if (event.session_id !== this.#sessionId) return;
    if (typeof event.seq === "number") {
      if (this.#lastSeq !== null && event.seq <= this.#lastSeq) return;
      this.#lastSeq = event.seq;
    }
    this.#emit("event", event);
  }
  // ---- outbox: messages not yet acknowledged ----
  #flush() {
    if (!this.#outbox.length || this.#stopped) return;
    if (!this.#socket || this.#socket.readyState !== 1) return;
    if (!this.#sessionId) {
      if (this.#state === "online") this.#create();
      return;
    }
    if (!this.#joined) return;
    for (const item of this.#outbox) {
      if (item.sentOn === this.#connectionNumber) continue;
      item.sentOn = this.#connectionNumber;
      const frame = {
        type: "message.send",
        session_id: this.#sessionId,
        text: item.text,
        client_message_id: item.client_message_id
      };
      const id = this.#request(frame, (reply) => this.#onSendReply(item, reply));
      if (!id) item.sentOn = 0;
    }
  }
  #onSendReply(item, reply) {
    if (reply.type === "message.accepted") {
      this.#outbox = this.#outbox.filter((other) => other !== item);
      this.#persist();
      const accepted = { message_id: reply.message_id, seq: reply.seq, client_message_id: item.client_message_id };
      this.#emit("outbox", { ...this.#describe(item), state: "accepted", message_id: reply.message_id, seq: reply.seq });
      item.resolve?.(accepted);
      return;
    }
    item.sentOn = 0;
    if (reply.code === "disconnected" || reply.code === "stopped") return;
    if (RETRYABLE_SEND_ERRORS.has(reply.code)) {
      this.#retryFlushLater(reply.retry_after_ms);
      return;
    }
    this.#outbox = this.#outbox.filter((other) => other !== item);
    this.#persist();
    this.#emit("outbox", { ...this.#describe(item), state: "failed", error: { code: reply.code, message: reply.message } });
    const error = new Error(reply.message || reply.code);
    error.code = reply.code;
    item.reject?.(error);
  }
  #retryFlushLater(retryAfterMs = 0) {
    if (this.#flushTimer) return;
    const wait = retryDelay(Math.min(this.#attempt, 4), this.#backoff, retryAfterMs);
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = null;
      for (const item of this.#outbox) if (item.sentOn === this.#connectionNumber) item.sentOn = 0;
      this.#flush();
    }, wait);
  }
  #describe(item) {
    return { client_message_id: item.client_message_id, text: item.text };
  }
  // ---- tokens ----
  #scheduleRefresh(expiresAtSeconds) {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = null;
    this.#tokenExpiresAt = expiresAtSeconds;
    if (!expiresAtSeconds || !this.#tokenProvider) return;
    const wait = refreshDelay(expiresAtSeconds * 1e3, Date.now());
    this.#refreshTimer = setTimeout(() => this.#refreshToken(), wait);
  }
  async #refreshToken() {
    this.#refreshTimer = null;
    const connectionNumber = this.#connectionNumber;
    let token;
    try {
      token = await this.#tokenProvider();
    } catch (error) {
      this.#emit("error", { code: "token_provider", message: `the token provider failed: ${error?.message || error}` });
      if (connectionNumber === this.#connectionNumber) this.#retryRefreshSoon();
      return;
    }
    if (connectionNumber !== this.#connectionNumber || this.#state !== "online") return;
    this.#sendRefresh(token);
  }
  #sendRefresh(token) {
    const connectionNumber = this.#connectionNumber;
    this.#request({ type: "auth.refresh", token }, (reply) => {
      if (connectionNumber !== this.#connectionNumber) return;
      if (reply.type === "auth.refreshed") {
        this.#token = token;
        this.#scheduleRefresh(reply.expires_at || tokenExpiry(token));
      } else if (reply.code !== "disconnected" && reply.code !== "stopped") {
        this.#emit("error", reply);
        this.#retryRefreshSoon();
      }
    });
  }
  #retryRefreshSoon() {
    if (!this.#tokenExpiresAt || Date.now() > this.#tokenExpiresAt * 1e3) return;
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = setTimeout(() => this.#refreshToken(), 2e3);
  }
  // ---- storage: the session (and unsent messages) survive a reload ----
  #restore() {
    if (!this.#storage) return;
    let saved = null;
    try {
      saved = JSON.parse(this.#storage.getItem(this.#storageKey) || "null");
    } catch {
      saved = null;
    }
    if (!saved || typeof saved !== "object") return;
    if (typeof saved.session_id === "string") {
      this.#sessionId = saved.session_id;
      this.#sessionKey = typeof saved.session_key === "string" ? saved.session_key : null;
    }
    if (Array.isArray(saved.outbox)) {
      for (const entry of saved.outbox) {
        if (entry && typeof entry.text === "string" && typeof entry.client_message_id === "string") {
          this.#outbox.push({ client_message_id: entry.client_message_id, text: entry.text, sentOn: 0, frameId: null, resolve: null, reject: null });
        }
      }
    }
  }
  #persist() {
    if (!this.#storage) return;
    try {
      if (!this.#sessionId && !this.#outbox.length) {
        this.#storage.removeItem(this.#storageKey);
        return;
      }
      this.#storage.setItem(
        this.#storageKey,
        JSON.stringify({
          session_id: this.#sessionId,
          session_key: this.#sessionKey,
          outbox: this.#outbox.map((item) => this.#describe(item))
        })
      );
    } catch {
    }
  }
  /** Another tab of this page started the conversation: join it here too. */
  #adoptSessionFromOtherTab(event) {
    if (event.key !== this.#storageKey || this.#sessionId || !event.newValue) return;
    let saved;
    try {
      saved = JSON.parse(event.newValue);
    } catch {
      return;
    }
    if (!saved || typeof saved.session_id !== "string") return;
    this.#sessionId = saved.session_id;
    this.#sessionKey = typeof saved.session_key === "string" ? saved.session_key : null;
    this.#lastSeq = null;
    if (this.#state === "online" && !this.#creating) this.#join();
  }
  // ---- events ----
  #setState(state, extra = {}) {
    this.#state = state;
    this.#emit("status", { state, attempt: this.#attempt, retryInMs: extra.retryInMs ?? null, reason: extra.reason ?? null });
  }
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
};
export {
  CloseCodes,
  DEFAULT_BACKOFF,
  DEFAULT_WEBSOCKET_PROBE_MS,
  FALLBACK_AFTER_FAILURES,
  SwitchboardClient,
  backoffDelay,
  httpBaseUrl,
  httpFallbackSocket,
  reachable,
  readEventStream,
  refreshDelay,
  retryDelay,
  tokenExpiry,
  websocketOpens,
  websocketUrl
};
