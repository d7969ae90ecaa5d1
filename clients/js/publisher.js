// Helpers for a backend that talks to Switchboard over HTTP (/v1, docs/http-api.md):
// publish an event into a session, a user's or an org's stream, open a session, chat
// without a WebSocket. Plain `fetch`, no dependencies; Node.js 20 and browsers.
//
//   import { createPublisher } from '@switchboard/client/publisher';
//   const sb = createPublisher({ gateway: 'https://chat.example.com', key: process.env.SWITCHBOARD_KEY });
//   await sb.publish({ session: 's_…' }, 'order.shipped', { order: 42 });

/** A refusal from the gateway: the HTTP `status` and the JSON error's `code`. */
export class SwitchboardApiError extends Error {
  constructor(status, code, message, body) {
    super(message || code || `HTTP ${status}`);
    this.name = 'SwitchboardApiError';
    this.status = status;
    this.code = code || null;
    this.body = body;
  }
}

function base(gateway) {
  const url = new URL(gateway);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  else if (url.protocol === 'wss:') url.protocol = 'https:';
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`gateway must be an http(s) URL, not ${gateway}`);
  return url.href.replace(/\/+$/, '');
}

/** One request; resolves with `{status, body}` for 2xx, throws SwitchboardApiError else. */
async function request(options, method, path, body) {
  if (!options?.gateway) throw new TypeError('`gateway` is required');
  const fetchImpl = options.fetch || globalThis.fetch;
  const headers = { accept: 'application/json' };
  const credential = options.key || options.token;
  if (credential) headers.authorization = `Bearer ${credential}`;
  if (options.sessionKey) headers['switchboard-session-key'] = options.sessionKey;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetchImpl(`${base(options.gateway)}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: options.signal,
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  if (!response.ok) {
    const error = json && typeof json === 'object' ? json.error : null;
    throw new SwitchboardApiError(response.status, error?.code, error?.message || `${method} ${path}: HTTP ${response.status}`, json);
  }
  return { status: response.status, body: json };
}

function withoutUndefined(object) {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined));
}

/**
 * `POST /v1/publish`: append an `event` (`name`, `data`) to a stream. `target` is
 * `{session}`, `{user}` or `{org}`. Resolves with `{seq}`.
 */
export async function publish(options, target, name, data, { idempotencyKey, orgId, durable } = {}) {
  const body = withoutUndefined({ target, name, data, idempotency_key: idempotencyKey, org_id: orgId, durable });
  return (await request(options, 'POST', '/v1/publish', body)).body;
}

/**
 * `POST /v1/sessions`: open a session. Resolves with `{session_id, seq, session_key?,
 * assistant?}` (an anonymous session's key comes only here: keep it).
 */
export async function createSession(options, { title, metadata, assistant } = {}) {
  return (await request(options, 'POST', '/v1/sessions', withoutUndefined({ title, metadata, assistant }))).body;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `POST /v1/chat`: send a message and wait for the reply. When the gateway answers
 * `202` (the reply takes longer than `timeoutMs`), follows its `poll` route until the
 * turn ends or `waitMs` (default 120 s) has passed. Resolves with the `/v1/chat`
 * reply: `session_id`, `status` (`completed`, `cancelled`, `failed`, or still
 * `running`/`queued` when `waitMs` ran out), `text`, `turn_id`, `seq`, `usage`, …
 * Pass `sessionKey` in `options` to go on with an anonymous session.
 */
export async function chat(options, text, { sessionId, clientMessageId, timeoutMs, metadata, assistant, waitMs = 120_000, pollMs = 250 } = {}) {
  const body = withoutUndefined({
    text,
    session_id: sessionId,
    client_message_id: clientMessageId,
    timeout_ms: timeoutMs,
    metadata,
    assistant,
  });
  let reply = (await request(options, 'POST', '/v1/chat', body)).body;
  const deadline = Date.now() + waitMs;
  const sessionKey = options.sessionKey || reply?.session_key;
  while (reply && (reply.status === 'running' || reply.status === 'queued') && reply.poll && Date.now() < deadline) {
    await sleep(pollMs);
    const next = (await request({ ...options, sessionKey }, 'GET', reply.poll)).body;
    reply = { ...reply, ...next };
  }
  return reply;
}

/** The three helpers bound to one gateway and credential. */
export function createPublisher(options) {
  return {
    publish: (target, name, data, extra) => publish(options, target, name, data, extra),
    createSession: (extra) => createSession(options, extra),
    chat: (text, extra) => chat(options, text, extra),
  };
}
