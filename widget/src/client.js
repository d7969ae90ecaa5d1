// The Switchboard JavaScript client: one WebSocket to a gateway, one chat session,
// and everything that keeps them alive — reconnects with backoff and jitter, resume
// with `after_seq` (each event delivered once, in order), resending of unacknowledged
// messages with the same `client_message_id`, `goaway`, heartbeats, and token refresh
// through a provider callback. No DOM: the widget builds on it, and so can any other
// front end (`import { SwitchboardClient } from '@switchboard/widget/client'`).
//
// The contract is docs/protocol.md; close codes and what they mean for reconnecting are
// in its §5.4 and in protocol/src/close.rs.
//
// When WebSockets cannot reach the gateway although HTTP can (a proxy that breaks
// upgrades), the client carries on over HTTP — Server-Sent Events to receive, REST to
// send (`fallback.js`) — with the same resume and the same idempotent sends, and goes
// back to a WebSocket as soon as one connects again (docs/widget.md, "When WebSockets
// are blocked").

import { httpBaseUrl, httpFallbackSocket, reachable, websocketOpens } from './fallback.js';

/** Session event types (docs/protocol.md §4): they carry `seq` and are deduplicated. */
const SESSION_EVENT_TYPES = new Set([
  'message',
  'turn.start',
  'turn.delta',
  'tool.request',
  'tool.result',
  'turn.end',
  'event',
  'handoff',
]);

/** Close codes the client acts on (docs/protocol.md §5.4). */
export const CloseCodes = Object.freeze({
  NORMAL: 1000,
  TOO_BIG: 1009,
  DRAINING: 1012,
  HEARTBEAT_TIMEOUT: 4000,
  SLOW_CONSUMER: 4008,
  TOO_MANY_BAD_FRAMES: 4029,
  UNAUTHORIZED: 4401,
});

/** Error codes after which a `message.send` is worth sending again later. */
const RETRYABLE_SEND_ERRORS = new Set(['rate_limited', 'unavailable', 'internal', 'forbidden']);

export const DEFAULT_BACKOFF = Object.freeze({ initialMs: 500, maxMs: 15000, factor: 2 });

/** Consecutive 4401 closes (with fresh tokens) before the client gives up. */
const MAX_UNAUTHORIZED_IN_A_ROW = 3;

/**
 * WebSockets that failed to open in a row, while the gateway answered HTTP, before
 * the client switches to the HTTP transport.
 */
export const FALLBACK_AFTER_FAILURES = 2;

/** How often a client on the HTTP transport tries a WebSocket again. */
export const DEFAULT_WEBSOCKET_PROBE_MS = 60_000;

/**
 * How long to wait before reconnect attempt `attempt` (0-based): exponential, capped,
 * with "equal jitter" — half of the delay fixed, half random — so a crowd of clients
 * dropped by one replica does not come back in lockstep, yet none retries at once.
 */
export function backoffDelay(attempt, backoff = DEFAULT_BACKOFF, random = Math.random) {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * backoff.factor ** attempt);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** The longest wait a server's `retry_after_ms` may ask of the client. */
const MAX_RETRY_AFTER_MS = 10 * 60 * 1000;

/**
 * How long to wait before retrying a refused request: the backoff, but never less
 * than the `retry_after_ms` the gateway sent with a `rate_limited` refusal (capped at
 * ten minutes), since retrying sooner is refused again.
 */
export function retryDelay(attempt, backoff = DEFAULT_BACKOFF, retryAfterMs = 0, random = Math.random) {
  const asked = Number.isFinite(retryAfterMs) && retryAfterMs > 0 ? Math.min(retryAfterMs, MAX_RETRY_AFTER_MS) : 0;
  return Math.max(backoffDelay(attempt, backoff, random), Math.ceil(asked));
}

/**
 * The `/ws` URL of a gateway given as `https://host[/prefix]`, `http://…`, `wss://…`
 * or `ws://…` (a path already ending in `/ws` is kept), with `?token=` when given.
 */
export function websocketUrl(gateway, token) {
  const base = typeof location === 'undefined' ? undefined : location.href;
  const url = new URL(gateway, base);
  if (url.protocol === 'https:') url.protocol = 'wss:';
  else if (url.protocol === 'http:') url.protocol = 'ws:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new TypeError(`gateway must be an http(s) or ws(s) URL, not ${gateway}`);
  }
  if (!url.pathname.endsWith('/ws')) {
    url.pathname = `${url.pathname.replace(/\/+$/, '')}/ws`;
  }
  url.search = '';
  url.hash = '';
  if (token) url.searchParams.set('token', token);
  return url.toString();
}

/** The `exp` claim of a JWT (seconds since the epoch), read without verifying it. */
export function tokenExpiry(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length < 2) return null;
  try {
    const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const claims = JSON.parse(atob(padded));
    return typeof claims.exp === 'number' ? claims.exp : null;
  } catch {
    return null;
  }
}

/**
 * When to refresh a token that expires at `expiresAtMs`, seen at `nowMs`: a quarter
 * of its remaining life ahead of expiry, at least 3 s and at most 60 s ahead, so a
 * slow provider still answers in time.
 */
export function refreshDelay(expiresAtMs, nowMs) {
  const remaining = expiresAtMs - nowMs;
  const margin = Math.min(60_000, Math.max(3_000, remaining / 4));
  return Math.max(0, remaining - margin);
}

/** An Error with the gateway's error `code` (or `disconnected`, `busy`). */
function requestError(code, message) {
  const error = new Error(message || code);
  error.code = code;
  return error;
}

function randomId(prefix) {
  if (globalThis.crypto?.randomUUID) return `${prefix}${globalThis.crypto.randomUUID().replace(/-/g, '')}`;
  let id = '';
  for (let i = 0; i < 32; i += 1) id += Math.floor(Math.random() * 16).toString(16);
  return `${prefix}${id}`;
}

/**
 * One chat session over one gateway connection, kept alive for as long as the client
 * runs.
 *
 * Events (all `CustomEvent`s; read `event.detail`):
 * - `status`: `{state, attempt, retryInMs, reason}` — `state` is one of `idle`,
 *   `connecting`, `online`, `reconnecting`, `offline`, `unauthorized`, `stopped`;
 * - `welcome`: the server's `welcome` frame;
 * - `session`: `{session_id, created, resumed, recovered}` once a session is joined;
 * - `event`: each session event (`message`, `turn.*`, `tool.*`, `event`, `handoff`) exactly once
 *   and in `seq` order, plus live `event`s of the user and org streams (with `stream`);
 * - `reset`: the remembered session is gone (expired, or another gateway); the next
 *   `send` starts a new one, so a UI should clear its transcript;
 * - `outbox`: `{client_message_id, text, state, message_id?, error?}` as a message goes
 *   `queued` → `accepted` (or `failed`);
 * - `presence`: the current session's `presence` (who is in it) and `presence.changed`
 *   (who arrived or left) frames (docs/protocol.md §3.15);
 * - `typing`: the current session's `typing` frames (another member started or stopped);
 * - `tool.decided`: the reply to `decideTool`;
 * - `error`: `{code, message, re?}` error frames that are not answered otherwise;
 * - `goaway`: the replica is draining (the client reconnects by itself).
 */
export class SwitchboardClient extends EventTarget {
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

  #transport = 'websocket';
  #websocketFailures = 0;
  #probeTimer = null;
  #assistant;

  #socket = null;
  #connectionNumber = 0;
  #state = 'idle';
  #attempt = 0;
  #unauthorizedInARow = 0;
  #retryTimer = null;
  #heartbeatTimer = null;
  #refreshTimer = null;
  #lastReceivedAt = 0;
  #heartbeatMs = 25_000;
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
  #pending = new Map();
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
    if (!options.gateway) throw new TypeError('SwitchboardClient: `gateway` is required');
    this.#gateway = options.gateway;
    websocketUrl(this.#gateway); // fail now, not on the first connect
    this.#staticToken = options.token || null;
    this.#tokenProvider = options.tokenProvider || null;
    this.#storage = options.storage ?? null;
    this.#storageKey = `switchboard:v1:${new URL(websocketUrl(this.#gateway)).href}|${options.storageKey || 'default'}`;
    this.#backoff = { ...DEFAULT_BACKOFF, ...(options.backoff || {}) };
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
    if (typeof window !== 'undefined' && window.addEventListener) {
      window.addEventListener('online', this.#onOnline);
      window.addEventListener('offline', this.#onOffline);
      window.addEventListener('storage', this.#onStorage);
    }
    for (const item of this.#outbox) this.#emit('outbox', { ...this.#describe(item), state: 'queued' });
    if (this.#isOffline()) {
      this.#goOffline();
    } else {
      this.#connect();
    }
  }

  /** Close the connection for good. Unsent messages stay in storage for next time. */
  stop() {
    this.#stopped = true;
    if (typeof window !== 'undefined' && window.removeEventListener) {
      window.removeEventListener('online', this.#onOnline);
      window.removeEventListener('offline', this.#onOffline);
      window.removeEventListener('storage', this.#onStorage);
    }
    this.#clearTimers();
    const socket = this.#socket;
    this.#socket = null;
    if (socket) this.#detach(socket, CloseCodes.NORMAL);
    this.#failPending('stopped', 'the client was stopped');
    this.#setState('stopped');
  }

  /** Reconnect now, skipping the backoff wait (e.g. when the network came back). */
  reconnectNow() {
    if (this.#stopped) return;
    if (this.#socket && this.#state === 'online') return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    if (this.#socket) return; // a connection attempt is under way
    this.#connect();
  }

  /**
   * Send a user message. It is queued (and kept in storage) until the gateway accepts
   * it, resent after reconnects with the same `client_message_id`, so it is appended
   * once. A session is created on the first send when there is none.
   * @returns {Promise<{message_id:string, seq:number, client_message_id:string}>}
   */
  send(text, { clientMessageId } = {}) {
    const body = String(text ?? '');
    if (!body.trim()) return Promise.reject(new Error('the message is empty'));
    const item = {
      client_message_id: clientMessageId || randomId('cm_'),
      text: body,
      sentOn: 0,
      frameId: null,
      resolve: null,
      reject: null,
    };
    const accepted = new Promise((resolve, reject) => {
      item.resolve = resolve;
      item.reject = reject;
    });
    this.#outbox.push(item);
    this.#persist();
    this.#emit('outbox', { ...this.#describe(item), state: 'queued' });
    this.#flush();
    return accepted;
  }

  /** Ask the gateway to stop a running turn (answered by its `turn.end`, `cancelled`). */
  cancelTurn(turnId) {
    if (!this.#sessionId) return false;
    return this.#sendFrame({ type: 'turn.cancel', session_id: this.#sessionId, turn_id: turnId });
  }

  /**
   * Tell the session's other members this user is typing (`true`) or stopped (`false`).
   * No reply; the gateway forwards at most one `true` per 2 s. False when not joined.
   */
  typing(isTyping) {
    if (!this.#sessionId || !this.#joined) return false;
    return Boolean(this.#sendFrame({ type: 'typing', session_id: this.#sessionId, typing: Boolean(isTyping) }, { withId: false }));
  }

  /** Approve or refuse a tool call (`tool.request`); answered by a `tool.decided` event. */
  decideTool(callId, approved) {
    if (!this.#sessionId) return false;
    return this.#sendFrame({
      type: 'tool.decide',
      session_id: this.#sessionId,
      call_id: callId,
      approved: Boolean(approved),
    });
  }

  /** Replace the token now (sent as `auth.refresh` when connected, used to reconnect). */
  setToken(token) {
    this.#staticToken = token;
    if (this.#state === 'online') this.#sendRefresh(token);
  }

  /** Forget the current session: the next `send` starts a new conversation. */
  forgetSession() {
    if (this.#sessionId && this.#joined) {
      this.#sendFrame({ type: 'session.leave', session_id: this.#sessionId });
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
    const frame = { type: 'handoff.request', session_id: this.#sessionId };
    if (reason) frame.reason = String(reason);
    return (await this.#ask(frame, 'handoff.updated')).handoff;
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
    if (this.#outbox.length) return Promise.reject(requestError('busy', 'a message is still being sent'));
    this.forgetSession();
    return new Promise((resolve, reject) => {
      if (!this.#create((reply) => (reply.type === 'session.created' ? resolve(reply) : reject(requestError(reply.code, reply.message))))) {
        reject(requestError('disconnected', 'not connected'));
      }
    });
  }

  /**
   * Make another of the user's conversations the current one: leave this one, join that
   * one with `after_seq: 0` (its whole history is replayed as `event`s).
   * @returns {Promise<{session_id:string, last_seq:number, recovered:boolean}>}
   */
  openSession(sessionId) {
    if (this.#outbox.length) return Promise.reject(requestError('busy', 'a message is still being sent'));
    if (this.#state !== 'online') return Promise.reject(requestError('disconnected', 'not connected'));
    this.forgetSession();
    this.#sessionId = sessionId;
    this.#persist();
    return new Promise((resolve, reject) => {
      this.#join({ fromStart: true, onDone: (reply) => (reply.type === 'session.joined' ? resolve(reply) : reject(requestError(reply.code, reply.message))) });
    });
  }

  /**
   * One page of the user's conversations, newest activity first (`session.list`).
   * @param {{state?:'active'|'archived', cursor?:string, limit?:number}} [options]
   * @returns {Promise<{sessions:object[], next_cursor?:string}>}
   */
  listSessions({ state, cursor, limit } = {}) {
    const frame = { type: 'session.list', scope: 'mine' };
    if (state) frame.state = state;
    if (cursor) frame.cursor = cursor;
    if (limit) frame.limit = limit;
    return this.#ask(frame, 'session.listed');
  }

  /**
   * Rename, archive or unarchive a conversation (`session.update`).
   * @returns {Promise<object>} the conversation's summary after the change
   */
  async updateSession(sessionId, { title, state } = {}) {
    const frame = { type: 'session.update', session_id: sessionId };
    if (title !== undefined) frame.title = title;
    if (state !== undefined) frame.state = state;
    return (await this.#ask(frame, 'session.updated')).session;
  }

  /**
   * Delete a conversation for good (`session.delete`). Deleting the current one
   * leaves it first, so the next `send` starts a new conversation.
   */
  async deleteSession(sessionId) {
    if (sessionId === this.#sessionId) this.forgetSession();
    await this.#ask({ type: 'session.delete', session_id: sessionId }, 'session.deleted');
  }

  /**
   * A conversation's transcript as text (`session.export`).
   * @param {'json'|'markdown'} [format]
   * @returns {Promise<{session_id:string, format:string, content:string}>}
   */
  exportSession(sessionId, format = 'markdown') {
    return this.#ask({ type: 'session.export', session_id: sessionId, format }, 'session.exported');
  }

  /** Send a request frame; resolve with its `replyType` reply, reject with its error. */
  #ask(frame, replyType) {
    return new Promise((resolve, reject) => {
      const sent = this.#request(frame, (reply) => {
        if (reply.type === replyType) resolve(reply);
        else reject(requestError(reply.code || 'internal', reply.message || `unexpected ${reply.type}`));
      });
      if (!sent) reject(requestError('disconnected', 'not connected'));
    });
  }

  // ---- connection lifecycle ----

  async #connect() {
    const connectionNumber = ++this.#connectionNumber;
    this.#setState(this.#everOnline ? 'reconnecting' : 'connecting');
    let token;
    try {
      token = await this.#freshToken();
    } catch (error) {
      if (connectionNumber !== this.#connectionNumber || this.#stopped) return;
      this.#emit('error', { code: 'token_provider', message: `the token provider failed: ${error?.message || error}` });
      this.#scheduleReconnect('token provider failed');
      return;
    }
    if (connectionNumber !== this.#connectionNumber || this.#stopped) return;
    this.#token = token;
    const overHttp = this.#transport === 'http';
    let socket;
    try {
      socket = overHttp
        ? httpFallbackSocket(httpBaseUrl(websocketUrl(this.#gateway)), { token, fetch: this.#fetch })
        : new this.#WebSocketImpl(websocketUrl(this.#gateway, token), 'switchboard.v1');
    } catch (error) {
      this.#emit('error', { code: 'connect', message: String(error?.message || error) });
      this.#scheduleReconnect('cannot open a WebSocket');
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
      // A failed handshake reports `error` then `close`; `close` decides what to do.
    };
  }

  // ---- the HTTP transport: used while WebSockets fail to open but HTTP works ----

  /** A WebSocket closed before it opened: is something breaking upgrades? */
  async #websocketFailed() {
    if (!this.#fallback) return;
    const failures = ++this.#websocketFailures;
    if (failures < FALLBACK_AFTER_FAILURES) return;
    // A gateway that is down fails HTTP too: then there is nothing to fall back to.
    if (!(await reachable(httpBaseUrl(websocketUrl(this.#gateway)), this.#fetch))) {
      this.#websocketFailures = 0;
      return;
    }
    if (this.#stopped || this.#transport === 'http' || this.#websocketFailures < failures) return;
    this.#useTransport('http');
    // Switch now rather than after the backoff: the gateway is there.
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
    if (this.#transport !== 'http' || !(this.#websocketProbeMs > 0)) return;
    this.#probeTimer = setTimeout(async () => {
      const opens = await websocketOpens(websocketUrl(this.#gateway, this.#token), this.#WebSocketImpl);
      if (this.#stopped || this.#transport !== 'http') return;
      if (!opens) return this.#scheduleProbe();
      this.#useTransport('websocket');
      // Leave the HTTP transport; the reconnect resumes after the last `seq`.
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
      if (typeof token !== 'string' || !token) throw new Error('the token provider returned no token');
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
    this.#failPending('disconnected', 'the connection closed before the gateway answered');
    if (this.#stopped) return;
    if (code === CloseCodes.UNAUTHORIZED) {
      this.#unauthorizedInARow += 1;
      if (!this.#tokenProvider || this.#unauthorizedInARow >= MAX_UNAUTHORIZED_IN_A_ROW) {
        // The same credentials would be refused again: wait for `setToken` or a restart.
        this.#setState('unauthorized', { reason: reason || 'the gateway refused the token' });
        return;
      }
    }
    if (this.#isOffline()) {
      this.#goOffline();
      return;
    }
    if (this.#goaway || code === CloseCodes.DRAINING) {
      // The replica is draining: come back at once (another replica, or this one while
      // it finishes turns), spread over a quarter second.
      this.#goaway = false;
      this.#scheduleReconnect('the gateway is draining', Math.round(Math.random() * 250));
      return;
    }
    this.#scheduleReconnect(reason || `connection closed (${code})`);
  }

  #scheduleReconnect(reason, delayMs) {
    if (this.#stopped) return;
    clearTimeout(this.#retryTimer);
    const wait = delayMs ?? backoffDelay(this.#attempt, this.#backoff);
    this.#attempt += 1;
    this.#setState('reconnecting', { reason, retryInMs: wait });
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (!this.#stopped && !this.#socket) this.#connect();
    }, wait);
  }

  #goOffline() {
    if (this.#stopped) return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    // The socket is as good as dead; drop it so coming back online starts afresh.
    const socket = this.#socket;
    if (socket) {
      this.#socket = null;
      this.#detach(socket, CloseCodes.NORMAL);
      this.#onClosed(CloseCodes.NORMAL, 'the browser is offline');
      return; // #onClosed sees the browser offline and lands here again, socketless
    }
    this.#setState('offline', { reason: 'the browser is offline' });
  }

  #isOffline() {
    return typeof navigator !== 'undefined' && navigator.onLine === false;
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
      // already closed
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
    const interval = Math.max(1000, Math.min(this.#heartbeatMs, 25_000));
    this.#heartbeatTimer = setInterval(() => {
      const silentFor = Date.now() - this.#lastReceivedAt;
      if (silentFor > interval * 2 + 5000) {
        const socket = this.#socket;
        if (socket) {
          this.#detach(socket, CloseCodes.NORMAL);
          this.#onClosed(CloseCodes.HEARTBEAT_TIMEOUT, 'no answer from the gateway');
        }
      } else if (silentFor >= interval) {
        this.#sendFrame({ type: 'ping' });
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
    if (id && typeof id === 'string') this.#pending.set(id, onReply);
    return id;
  }

  #failPending(code, message) {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const onReply of pending) onReply({ type: 'error', code, message });
  }

  #onFrame(data) {
    this.#lastReceivedAt = Date.now();
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (!frame || typeof frame !== 'object') return;
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
      case 'welcome':
        this.#onWelcome(frame);
        break;
      case 'goaway':
        this.#goaway = true;
        this.#emit('goaway', frame);
        break;
      case 'tool.decided':
        this.#emit('tool.decided', frame);
        break;
      case 'presence':
      case 'presence.changed':
        if (frame.session_id === this.#sessionId) this.#emit('presence', frame);
        break;
      case 'typing':
        if (frame.session_id === this.#sessionId) this.#emit('typing', frame);
        break;
      case 'error':
        this.#emit('error', frame);
        break;
      default:
        break;
    }
  }

  #onWelcome(frame) {
    this.#principal = frame.principal || null;
    this.#limits = frame.limits || null;
    this.#heartbeatMs = frame.heartbeat_ms || 25_000;
    this.#unauthorizedInARow = 0;
    this.#emit('welcome', frame);
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
    this.#setState('online');
  }

  /**
   * Join the current session: resume after the last `seq` delivered, or (`fromStart`,
   * switching conversations) replay it all. `onDone` hears the reply.
   */
  #join({ fromStart = false, onDone = null } = {}) {
    const sessionId = this.#sessionId;
    const frame = { type: 'session.join', session_id: sessionId };
    if (this.#sessionKey) frame.session_key = this.#sessionKey;
    if (this.#lastSeq !== null) frame.after_seq = this.#lastSeq;
    else if (fromStart) frame.after_seq = 0;
    const resumed = this.#lastSeq !== null;
    const sent = this.#request(frame, (reply) => {
      onDone?.(reply);
      if (sessionId !== this.#sessionId) {
        // Another conversation was opened meanwhile: this one is not wanted any more.
        if (reply.type === 'session.joined') this.#sendFrame({ type: 'session.leave', session_id: sessionId });
        return;
      }
      if (reply.type === 'session.joined') {
        this.#joined = true;
        this.#becomeOnline();
        this.#emit('session', {
          session_id: reply.session_id,
          created: false,
          resumed,
          recovered: reply.recovered,
          last_seq: reply.last_seq,
        });
        this.#flush();
      } else if (reply.code === 'not_found') {
        // Expired, or this gateway never knew it: start over on the next send.
        this.#sessionId = null;
        this.#sessionKey = null;
        this.#lastSeq = null;
        this.#persist();
        this.#emit('reset', { reason: reply.message });
        this.#becomeOnline();
        if (this.#outbox.length) this.#create();
      } else if (reply.type === 'error' && reply.code !== 'disconnected' && reply.code !== 'stopped') {
        // E.g. `unavailable` while the backplane is down: try again on a new connection.
        const socket = this.#socket;
        if (socket) {
          this.#detach(socket, CloseCodes.NORMAL);
          this.#onClosed(1011, reply.message);
        }
      }
    });
    if (!sent) onDone?.({ type: 'error', code: 'disconnected', message: 'not connected' });
  }

  /** Create a session (unless one is being created); `onDone` hears the reply. */
  #create(onDone = null) {
    if (this.#creating || this.#sessionId) return false;
    this.#creating = true;
    const frame = { type: 'session.create' };
    if (this.#metadata) frame.metadata = this.#metadata;
    if (this.#assistant) frame.assistant = this.#assistant;
    const sent = this.#request(frame, (reply) => {
      this.#creating = false;
      onDone?.(reply);
      if (reply.type === 'session.created' && this.#sessionId) {
        // Another conversation was opened meanwhile: that one stays the current one.
        this.#sendFrame({ type: 'session.leave', session_id: reply.session_id });
      } else if (reply.type === 'session.created') {
        this.#sessionId = reply.session_id;
        this.#sessionKey = reply.session_key || null;
        this.#lastSeq = typeof reply.seq === 'number' ? reply.seq : null;
        this.#joined = true;
        this.#persist();
        this.#emit('session', { session_id: reply.session_id, created: true, resumed: false, recovered: true, last_seq: reply.seq });
        this.#flush();
      } else if (reply.type === 'error' && reply.code !== 'disconnected' && reply.code !== 'stopped') {
        this.#emit('error', reply);
        this.#retryFlushLater(reply.retry_after_ms);
      }
    });
    if (!sent) this.#creating = false;
    return Boolean(sent);
  }

  #onEvent(event) {
    if (event.stream && !event.session_id) {
      // User and org streams are live only (no replay), so there is nothing to dedupe.
      this.#emit('event', event);
      return;
    }
    if (event.session_id !== this.#sessionId) return;
    if (typeof event.seq === 'number') {
      // The seam between a replay and live delivery, or a replay after a reconnect,
      // may offer an event again: each `seq` is delivered once.
      if (this.#lastSeq !== null && event.seq <= this.#lastSeq) return;
      this.#lastSeq = event.seq;
    }
    this.#emit('event', event);
  }

  // ---- outbox: messages not yet acknowledged ----

  #flush() {
    if (!this.#outbox.length || this.#stopped) return;
    if (!this.#socket || this.#socket.readyState !== 1) return;
    if (!this.#sessionId) {
      if (this.#state === 'online') this.#create();
      return;
    }
    if (!this.#joined) return;
    for (const item of this.#outbox) {
      if (item.sentOn === this.#connectionNumber) continue;
      item.sentOn = this.#connectionNumber;
      const frame = {
        type: 'message.send',
        session_id: this.#sessionId,
        text: item.text,
        client_message_id: item.client_message_id,
      };
      const id = this.#request(frame, (reply) => this.#onSendReply(item, reply));
      if (!id) item.sentOn = 0;
    }
  }

  #onSendReply(item, reply) {
    if (reply.type === 'message.accepted') {
      this.#outbox = this.#outbox.filter((other) => other !== item);
      this.#persist();
      const accepted = { message_id: reply.message_id, seq: reply.seq, client_message_id: item.client_message_id };
      this.#emit('outbox', { ...this.#describe(item), state: 'accepted', message_id: reply.message_id, seq: reply.seq });
      item.resolve?.(accepted);
      return;
    }
    item.sentOn = 0;
    if (reply.code === 'disconnected' || reply.code === 'stopped') return; // resent after reconnecting
    if (RETRYABLE_SEND_ERRORS.has(reply.code)) {
      this.#retryFlushLater(reply.retry_after_ms);
      return;
    }
    this.#outbox = this.#outbox.filter((other) => other !== item);
    this.#persist();
    this.#emit('outbox', { ...this.#describe(item), state: 'failed', error: { code: reply.code, message: reply.message } });
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
    const wait = refreshDelay(expiresAtSeconds * 1000, Date.now());
    this.#refreshTimer = setTimeout(() => this.#refreshToken(), wait);
  }

  async #refreshToken() {
    this.#refreshTimer = null;
    const connectionNumber = this.#connectionNumber;
    let token;
    try {
      token = await this.#tokenProvider();
    } catch (error) {
      this.#emit('error', { code: 'token_provider', message: `the token provider failed: ${error?.message || error}` });
      if (connectionNumber === this.#connectionNumber) this.#retryRefreshSoon();
      return;
    }
    if (connectionNumber !== this.#connectionNumber || this.#state !== 'online') return;
    this.#sendRefresh(token);
  }

  #sendRefresh(token) {
    const connectionNumber = this.#connectionNumber;
    this.#request({ type: 'auth.refresh', token }, (reply) => {
      if (connectionNumber !== this.#connectionNumber) return;
      if (reply.type === 'auth.refreshed') {
        this.#token = token;
        this.#scheduleRefresh(reply.expires_at || tokenExpiry(token));
      } else if (reply.code !== 'disconnected' && reply.code !== 'stopped') {
        this.#emit('error', reply);
        this.#retryRefreshSoon();
      }
    });
  }

  #retryRefreshSoon() {
    if (!this.#tokenExpiresAt || Date.now() > this.#tokenExpiresAt * 1000) return;
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = setTimeout(() => this.#refreshToken(), 2000);
  }

  // ---- storage: the session (and unsent messages) survive a reload ----

  #restore() {
    if (!this.#storage) return;
    let saved = null;
    try {
      saved = JSON.parse(this.#storage.getItem(this.#storageKey) || 'null');
    } catch {
      saved = null;
    }
    if (!saved || typeof saved !== 'object') return;
    if (typeof saved.session_id === 'string') {
      this.#sessionId = saved.session_id;
      this.#sessionKey = typeof saved.session_key === 'string' ? saved.session_key : null;
    }
    if (Array.isArray(saved.outbox)) {
      for (const entry of saved.outbox) {
        if (entry && typeof entry.text === 'string' && typeof entry.client_message_id === 'string') {
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
          outbox: this.#outbox.map((item) => this.#describe(item)),
        }),
      );
    } catch {
      // Storage full or blocked (private mode): the conversation just won't survive a reload.
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
    if (!saved || typeof saved.session_id !== 'string') return;
    this.#sessionId = saved.session_id;
    this.#sessionKey = typeof saved.session_key === 'string' ? saved.session_key : null;
    this.#lastSeq = null;
    if (this.#state === 'online' && !this.#creating) this.#join();
  }

  // ---- events ----

  #setState(state, extra = {}) {
    this.#state = state;
    this.#emit('status', { state, attempt: this.#attempt, retryInMs: extra.retryInMs ?? null, reason: extra.reason ?? null });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
