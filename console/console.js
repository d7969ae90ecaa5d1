// The Switchboard operator console: an operator signs in with their JWT, sees their
// org's conversations waiting for a person (live), opens one (its whole history, the
// assistant's sources included), claims it, answers the customer and releases it back
// to the assistant. No framework and no build: this file is served as it is by the
// gateway (`/console/console.js`) under a Content-Security-Policy that requires
// Trusted Types, so every text from the network goes into the page as text
// (`textContent`), never as HTML. docs/console.md describes it; the frames it speaks
// are docs/protocol.md's.

const TOKEN_KEY = 'switchboard-console:token';
const BACKOFF = { initialMs: 500, maxMs: 15_000, factor: 2 };
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_DRAINING = 1012;

// ---- small DOM helpers ----

const $ = (id) => document.getElementById(id);

/** An element with `className`, `text`, `dataset` and other attributes, and children. */
function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'className') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

/** An http(s) URL from a source's `uri`, or null (no `javascript:` and the like). */
function safeUrl(value) {
  if (typeof value !== 'string') return null;
  try {
    const url = new URL(value, location.href);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

/** "3 min", "2 h": how long ago `ms` was. */
function since(ms) {
  const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (seconds < 60) return 'just now';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h`;
  return `${Math.round(hours / 24)} d`;
}

function clock(ms) {
  return typeof ms === 'number' ? new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
}

/** An operator's display name, or their user id. */
function staffName(staffer) {
  return staffer?.name || staffer?.user_id || 'An operator';
}

/** What an error frame means to an operator, in a sentence. */
function readableError(action, error) {
  const detail = error?.message ? ` (${error.message})` : '';
  switch (error?.code) {
    case 'conflict':
      return `Could not ${action}: another operator holds this conversation${detail}.`;
    case 'forbidden':
      return `Could not ${action}: your role does not allow it${detail}.`;
    case 'not_found':
      return `Could not ${action}: the conversation no longer exists${detail}.`;
    case 'rate_limited':
      return `Could not ${action}: too many requests; try again in a moment.`;
    case 'disconnected':
      return `Could not ${action}: the connection dropped; try again once it is back.`;
    default:
      return `Could not ${action}${detail || '.'}`;
  }
}

// ---- the connection ----

/**
 * One WebSocket to the gateway that served this page, kept open until `stop()`:
 * reconnects with exponential backoff and jitter, pings when idle, and matches
 * replies to requests by `id`.
 */
class Link {
  constructor({ token, onWelcome, onFrame, onStatus, onRefused }) {
    this.token = token;
    this.onWelcome = onWelcome;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.onRefused = onRefused;
    this.socket = null;
    this.attempt = 0;
    this.nextId = 1;
    this.pending = new Map();
    this.stopped = false;
    this.retryTimer = null;
    this.heartbeatTimer = null;
    this.lastReceivedAt = 0;
    this.goaway = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.heartbeatTimer);
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onclose = null;
      socket.close(1000);
    }
    this.failPending();
  }

  connect() {
    const url = new URL('ws', location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.search = '';
    url.hash = '';
    url.searchParams.set('token', this.token);
    this.onStatus(this.attempt ? 'reconnecting' : 'connecting');
    let socket;
    try {
      socket = new WebSocket(url.href, 'switchboard.v1');
    } catch {
      this.retry();
      return;
    }
    this.socket = socket;
    this.goaway = false;
    socket.onmessage = (message) => {
      if (this.socket !== socket) return;
      this.lastReceivedAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      this.receive(frame);
    };
    socket.onclose = (close) => {
      if (this.socket !== socket) return;
      this.closed(close.code, close.reason);
    };
  }

  receive(frame) {
    if (!frame || typeof frame !== 'object') return;
    if (frame.type === 'welcome') {
      this.attempt = 0;
      this.startHeartbeat(frame.heartbeat_ms);
      this.onStatus('online');
      this.onWelcome(frame);
      return;
    }
    if (frame.type === 'goaway') {
      this.goaway = true;
      return;
    }
    if (frame.re && this.pending.has(frame.re)) {
      const settle = this.pending.get(frame.re);
      this.pending.delete(frame.re);
      settle(frame);
      return;
    }
    this.onFrame(frame);
  }

  closed(code, reason) {
    this.socket = null;
    clearInterval(this.heartbeatTimer);
    this.failPending();
    if (this.stopped) return;
    if (code === CLOSE_UNAUTHORIZED) {
      this.stopped = true;
      this.onRefused(reason || 'the gateway refused the token');
      return;
    }
    if (this.goaway || code === CLOSE_DRAINING) {
      this.retry(Math.round(Math.random() * 250));
      return;
    }
    this.retry();
  }

  retry(delayMs) {
    if (this.stopped) return;
    const ceiling = Math.min(BACKOFF.maxMs, BACKOFF.initialMs * BACKOFF.factor ** this.attempt);
    const wait = delayMs ?? Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.attempt += 1;
    this.onStatus('reconnecting', wait);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (!this.stopped && !this.socket) this.connect();
    }, wait);
  }

  startHeartbeat(heartbeatMs) {
    clearInterval(this.heartbeatTimer);
    const interval = Math.max(1000, Math.min(heartbeatMs || 25_000, 25_000));
    this.heartbeatTimer = setInterval(() => {
      const silentFor = Date.now() - this.lastReceivedAt;
      if (silentFor > interval * 2 + 5000) {
        // Nothing for two intervals: the link is dead even if the socket does not know.
        const socket = this.socket;
        if (socket) {
          socket.onclose = null;
          socket.close(1000);
          this.closed(4000, 'no answer from the gateway');
        }
      } else if (silentFor >= interval) {
        this.send({ type: 'ping' });
      }
    }, interval);
  }

  /** Send a frame (with an `id`); false when not connected. */
  send(frame) {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    const full = { id: `c${this.nextId++}`, ...frame };
    socket.send(JSON.stringify(full));
    return full.id;
  }

  /** Send a frame and resolve with its reply (`error` frames included). */
  request(frame) {
    return new Promise((resolve) => {
      const id = this.send(frame);
      if (!id) resolve({ type: 'error', code: 'disconnected', message: 'not connected' });
      else this.pending.set(id, resolve);
    });
  }

  failPending() {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const settle of pending) settle({ type: 'error', code: 'disconnected', message: 'the connection closed' });
  }
}

// ---- the console ----

const ui = {
  signIn: $('sign-in'),
  signInForm: $('sign-in-form'),
  token: $('token'),
  signInError: $('sign-in-error'),
  who: $('who'),
  whoName: $('who-name'),
  connection: $('connection'),
  signOut: $('sign-out'),
  desk: $('desk'),
  inboxList: $('inbox-list'),
  inboxCount: $('inbox-count'),
  inboxEmpty: $('inbox-empty'),
  title: $('conversation-title'),
  state: $('conversation-state'),
  claim: $('claim'),
  release: $('release'),
  error: $('conversation-error'),
  empty: $('conversation-empty'),
  transcript: $('transcript'),
  replyForm: $('reply-form'),
  reply: $('reply'),
  send: $('send'),
};

let link = null;
let me = null; // the principal from `welcome`
const inbox = new Map(); // session_id -> {session, handoff}
let sessionToOpen = null; // from the URL, opened after the first welcome

/** The open conversation. */
const open = {
  sessionId: null,
  joined: false,
  lastSeq: 0,
  handoff: null,
  turns: new Map(), // turn_id -> {el, body, text, messageId}
  lastEndedTurn: null,
  messages: new Set(), // message ids on screen
};

function isStaff(principal) {
  const roles = principal?.roles || [];
  return roles.includes('operator') || roles.includes('admin');
}

// ---- signing in and out ----

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function storeToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage blocked: the sign-in lasts this page view.
  }
}

/**
 * `#token=…` and `#session=…` in the URL (links from a staff tool, tests): the token
 * signs in, the session opens once connected. Both are taken, then removed from the
 * address bar.
 */
function fromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const found = { token: params.get('token'), session: params.get('session') };
  if (found.token || found.session) history.replaceState(null, '', location.pathname + location.search);
  return found;
}

function showSignIn(problem) {
  link?.stop();
  link = null;
  me = null;
  ui.desk.hidden = true;
  ui.who.hidden = true;
  ui.signIn.hidden = false;
  ui.signInError.hidden = !problem;
  ui.signInError.textContent = problem || '';
  ui.token.value = '';
  ui.token.focus();
}

function signIn(token) {
  storeToken(token);
  ui.signIn.hidden = true;
  ui.desk.hidden = false;
  ui.who.hidden = false;
  ui.whoName.textContent = '';
  link = new Link({
    token,
    onWelcome: welcomed,
    onFrame: received,
    onStatus: showConnection,
    onRefused: (reason) => {
      storeToken(null);
      showSignIn(`Your token was refused: ${reason}. Sign in with a fresh one.`);
    },
  });
  link.start();
}

function signOut() {
  storeToken(null);
  closeConversation();
  inbox.clear();
  renderInbox();
  showSignIn(null);
}

function showConnection(state, retryInMs) {
  ui.connection.dataset.state = state;
  if (state !== 'online') open.joined = false; // joined again after the next welcome
  if (state === 'online') ui.connection.textContent = 'Connected';
  else if (state === 'connecting') ui.connection.textContent = 'Connecting…';
  else ui.connection.textContent = retryInMs ? `Reconnecting… (in ${Math.max(1, Math.round(retryInMs / 1000))} s)` : 'Reconnecting…';
  const online = state === 'online';
  ui.reply.disabled = !(online && open.joined);
  ui.send.disabled = ui.reply.disabled;
}

function welcomed(welcome) {
  me = welcome.principal || null;
  if (!isStaff(me)) {
    storeToken(null);
    showSignIn('This token is not an operator’s: it needs the role operator or admin.');
    return;
  }
  ui.whoName.textContent = `${me.name || me.user_id} · ${me.org_id}`;
  if (welcome.limits?.max_text_chars) ui.reply.maxLength = welcome.limits.max_text_chars;
  loadInbox();
  // After a reconnect: pick the open conversation up where it was.
  if (open.sessionId) join(open.sessionId, open.lastSeq);
  else if (sessionToOpen) openConversation(sessionToOpen);
  sessionToOpen = null;
}

// ---- the inbox ----

async function loadInbox() {
  const reply = await link.request({ type: 'inbox.list' });
  if (reply.type !== 'inbox.listed') {
    if (reply.code !== 'disconnected') showInboxProblem(readableError('load the inbox', reply));
    return;
  }
  inbox.clear();
  for (const entry of reply.sessions || []) inbox.set(entry.session.session_id, entry);
  renderInbox();
}


function inboxChanged(frame) {
  // The frame is an inbox entry: the conversation's summary and its handoff.
  const { session, handoff } = frame;
  const sessionId = session?.session_id;
  if (!sessionId || !handoff) return;
  if (handoff.state === 'assistant') inbox.delete(sessionId);
  else inbox.set(sessionId, { session, handoff });
  renderInbox();
  if (sessionId === open.sessionId) setHandoff(handoff);
}

function showInboxProblem(text) {
  ui.inboxEmpty.hidden = false;
  ui.inboxEmpty.textContent = text;
}

function conversationName(session) {
  return session?.title || session?.preview || 'New conversation';
}

function renderInbox() {
  const entries = [...inbox.values()].sort((a, b) => (a.handoff.since ?? 0) - (b.handoff.since ?? 0));
  ui.inboxCount.textContent = entries.length ? String(entries.length) : '';
  ui.inboxEmpty.hidden = entries.length > 0;
  ui.inboxEmpty.textContent = 'No conversation is waiting for a person.';
  // Redrawing must not take the keyboard focus away from an entry.
  const focused = ui.inboxList.contains(document.activeElement) ? document.activeElement.dataset.sessionId : null;
  const current = open.sessionId ? inbox.get(open.sessionId) : null;
  if (current?.session.title || current?.session.preview) ui.title.textContent = conversationName(current.session);
  const items = entries.map(({ session, handoff }) => {
    const held = handoff.state === 'human';
    const mine = held && handoff.operator?.user_id === me?.user_id;
    const badge = held ? (mine ? 'With you' : `With ${staffName(handoff.operator)}`) : 'Waiting';
    const customer = session.owner ? `Customer ${session.owner}` : 'Customer';
    const button = el(
      'button',
      {
        type: 'button',
        className: 'entry',
        dataset: { sessionId: session.session_id, state: handoff.state },
        'aria-current': session.session_id === open.sessionId ? 'true' : null,
      },
      [
        el('span', { className: 'entry-title', text: conversationName(session) }),
        el('span', { className: 'badge', dataset: { state: held ? (mine ? 'mine' : 'human') : 'waiting' }, text: badge }),
        handoff.reason ? el('span', { className: 'entry-reason', text: handoff.reason }) : null,
        el('span', { className: 'entry-meta', text: `${customer} · ${held ? 'held' : 'waiting'} ${since(handoff.since)}` }),
      ],
    );
    button.addEventListener('click', () => openConversation(session.session_id));
    return el('li', {}, [button]);
  });
  ui.inboxList.replaceChildren(...items);
  if (focused) ui.inboxList.querySelector(`button[data-session-id="${CSS.escape(focused)}"]`)?.focus();
}

// ---- the open conversation ----

function openConversation(sessionId) {
  if (!link) return;
  if (sessionId === open.sessionId && open.joined) {
    ui.reply.focus();
    return;
  }
  const previous = open.joined ? open.sessionId : null;
  if (previous) link.send({ type: 'session.leave', session_id: previous });
  resetConversation(sessionId);
  setHandoff(inbox.get(sessionId)?.handoff ?? null);
  renderInbox();
  join(sessionId, 0);
}

function closeConversation() {
  if (open.joined && link) link.send({ type: 'session.leave', session_id: open.sessionId });
  resetConversation(null);
}

function resetConversation(sessionId) {
  open.sessionId = sessionId;
  open.joined = false;
  open.lastSeq = 0;
  open.handoff = null;
  open.turns.clear();
  open.lastEndedTurn = null;
  open.messages.clear();
  ui.transcript.replaceChildren();
  ui.transcript.hidden = !sessionId;
  ui.empty.hidden = Boolean(sessionId);
  ui.error.hidden = true;
  const entry = sessionId ? inbox.get(sessionId) : null;
  ui.title.textContent = !sessionId ? 'No conversation open' : entry?.session.title || entry?.session.preview || 'Conversation';
  ui.reply.disabled = true;
  ui.send.disabled = true;
  renderHandoff();
}

async function join(sessionId, afterSeq) {
  const reply = await link.request({ type: 'session.join', session_id: sessionId, after_seq: afterSeq });
  if (sessionId !== open.sessionId) {
    if (reply.type === 'session.joined') link?.send({ type: 'session.leave', session_id: sessionId });
    return;
  }
  if (reply.type !== 'session.joined') {
    if (reply.code !== 'disconnected') showError(readableError('open the conversation', reply));
    return;
  }
  open.joined = true;
  if (reply.handoff) setHandoff(reply.handoff);
  if (!inbox.get(sessionId)?.session.owner) showSummary(sessionId);
  ui.reply.disabled = false;
  ui.send.disabled = false;
}

/** A conversation not in the inbox (opened from a link): its title from `/v1`. */
async function showSummary(sessionId) {
  let summary = null;
  try {
    const response = await fetch(new URL(`v1/sessions/${encodeURIComponent(sessionId)}`, location.href), {
      headers: { authorization: `Bearer ${link?.token}` },
      cache: 'no-store',
    });
    if (response.ok) summary = await response.json();
  } catch {
    return; // the title is a nicety: the transcript is there anyway
  }
  if (summary && sessionId === open.sessionId && (summary.title || summary.preview)) {
    ui.title.textContent = conversationName(summary);
  }
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = !text;
}

function setHandoff(handoff) {
  open.handoff = handoff;
  renderHandoff();
}

function renderHandoff() {
  const handoff = open.handoff;
  const state = handoff?.state ?? (open.sessionId ? 'assistant' : null);
  const holder = handoff?.operator;
  const mine = state === 'human' && holder?.user_id === me?.user_id;
  const admin = (me?.roles || []).includes('admin');
  ui.claim.hidden = !open.sessionId || mine;
  // The holder or an admin may give it back; while it waits, any staff may.
  ui.release.hidden = !((state === 'human' && (mine || admin)) || state === 'waiting');
  let text = '';
  if (state === 'waiting') text = `Waiting for a person${handoff?.since ? ` since ${clock(handoff.since)}` : ''}. The assistant is silent.`;
  else if (state === 'human') text = mine ? 'You hold this conversation. The assistant is silent.' : `${staffName(holder)} holds this conversation.`;
  else if (state === 'assistant') text = 'The assistant answers this conversation.';
  if (handoff?.reason && state !== 'assistant') text += ` Reason: ${handoff.reason}`;
  ui.state.textContent = text;
  ui.state.dataset.state = state ?? '';
}

async function changeHandoff(type, action) {
  const sessionId = open.sessionId;
  if (!sessionId || !link) return;
  showError('');
  const buttons = [ui.claim, ui.release];
  for (const button of buttons) button.disabled = true;
  const reply = await link.request({ type, session_id: sessionId });
  for (const button of buttons) button.disabled = false;
  if (sessionId !== open.sessionId) return;
  if (reply.type === 'handoff.updated') {
    setHandoff(reply.handoff);
    if (reply.handoff.state === 'assistant') inbox.delete(sessionId);
    else if (inbox.has(sessionId)) inbox.get(sessionId).handoff = reply.handoff;
    renderInbox();
    if (type === 'handoff.claim') ui.reply.focus();
  } else {
    showError(readableError(action, reply));
  }
}

async function sendReply() {
  const text = ui.reply.value;
  if (!text.trim() || !open.joined || !link) return;
  const sessionId = open.sessionId;
  ui.reply.value = '';
  const reply = await link.request({
    type: 'message.send',
    session_id: sessionId,
    text,
    client_message_id: `op_${crypto.randomUUID().replace(/-/g, '')}`,
  });
  if (reply.type !== 'message.accepted' && sessionId === open.sessionId) {
    ui.reply.value = text; // not lost: try again
    showError(readableError('send the reply', reply));
  }
}

// ---- the transcript ----

function received(frame) {
  if (frame.type === 'inbox.changed') {
    inboxChanged(frame);
    return;
  }
  if (frame.type === 'error') {
    if (frame.code === 'token_expired') showError('Your sign-in expired: sign in again.');
    return;
  }
  if (!frame.session_id || frame.session_id !== open.sessionId || typeof frame.seq !== 'number') return;
  if (frame.seq <= open.lastSeq) return; // the seam between replay and live, or a resume
  open.lastSeq = frame.seq;
  const stick = nearEnd();
  showEvent(frame);
  if (stick) ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

function showEvent(event) {
  switch (event.type) {
    case 'message':
      showMessage(event);
      break;
    case 'turn.start':
      turnView(event.turn_id);
      break;
    case 'turn.delta': {
      const turn = turnView(event.turn_id);
      turn.text += event.text;
      turn.body.textContent = turn.text;
      break;
    }
    case 'turn.end':
      endTurn(event);
      break;
    case 'tool.request':
      statusLine(`The assistant asks to use ${event.tool}.`, 'tool', event.ts);
      break;
    case 'tool.result':
      statusLine(event.ok ? `Tool call ${event.call_id} done.` : `Tool call ${event.call_id} not carried out.`, 'tool', event.ts);
      break;
    case 'handoff':
      showHandoffEvent(event);
      break;
    case 'event':
      if (typeof event.data?.text === 'string') statusLine(event.data.text, 'event', event.ts);
      break;
    default:
      break; // a newer event type: not for this console
  }
}

function bubble(role, label, text, ts) {
  const body = el('div', { className: 'body', text });
  const node = el('div', { className: 'msg', dataset: { role } }, [
    el('div', { className: 'msg-head' }, [el('span', { className: 'author', text: label }), el('time', { text: clock(ts) })]),
    body,
  ]);
  ui.transcript.append(node);
  return { node, body };
}

function showMessage(event) {
  const { message_id: id, role, text, author } = event;
  if (open.messages.has(id)) return;
  open.messages.add(id);
  if (role === 'assistant') {
    const ended = open.lastEndedTurn;
    if (ended && !ended.messageId && ended.text === text) {
      ended.messageId = id; // the transcript copy of the answer on screen
      return;
    }
    bubble('assistant', 'Assistant', text, event.ts);
    return;
  }
  if (role === 'user') {
    bubble('user', author ? `Customer (${author})` : 'Customer', text, event.ts);
    return;
  }
  if (role === 'operator') {
    const you = me && author && author === (me.name || me.user_id);
    bubble('operator', you ? `${author} (you)` : author || 'Operator', text, event.ts);
    return;
  }
  statusLine(text, 'system', event.ts);
}

function turnView(turnId) {
  let turn = open.turns.get(turnId);
  if (turn) return turn;
  const view = bubble('assistant', 'Assistant', '', null);
  view.node.dataset.turnId = turnId;
  view.node.dataset.state = 'streaming';
  turn = { el: view.node, body: view.body, text: '', messageId: null };
  open.turns.set(turnId, turn);
  return turn;
}

function endTurn(event) {
  const turn = turnView(event.turn_id);
  if (typeof event.text === 'string' && (event.text || event.status === 'completed')) turn.text = event.text;
  turn.body.textContent = turn.text;
  turn.el.dataset.state = event.status;
  const time = turn.el.querySelector('time');
  if (time) time.textContent = clock(event.ts);
  if (event.status === 'failed') turn.el.append(el('p', { className: 'note', text: `The answer failed${event.error ? `: ${event.error}` : '.'}` }));
  if (event.status === 'cancelled') turn.el.append(el('p', { className: 'note', text: 'Stopped.' }));
  if (Array.isArray(event.sources) && event.sources.length) turn.el.append(sourcesList(event.sources));
  open.lastEndedTurn = turn;
}

function sourcesList(sources) {
  const list = el('ol');
  for (const source of sources) {
    const title = String(source.title || source.doc_id || 'Untitled');
    const href = safeUrl(source.uri);
    const item = el('li');
    if (href) item.append(el('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow', text: title }));
    else item.textContent = title;
    if (source.doc_id && source.doc_id !== title) item.append(el('span', { className: 'doc-id', text: ` ${source.doc_id}` }));
    list.append(item);
  }
  return el('div', { className: 'sources' }, [el('h3', { text: 'Sources the assistant used' }), list]);
}

function showHandoffEvent(event) {
  const by = event.by === 'assistant' ? 'The assistant' : event.by === 'customer' ? 'The customer' : null;
  let text;
  if (event.state === 'waiting') text = `${by || 'Someone'} asked for a person${event.reason ? `: ${event.reason}` : '.'}`;
  else if (event.state === 'human') text = `${staffName(event.operator)} joined the conversation.`;
  else text = `${event.operator ? staffName(event.operator) : 'The operator'} handed the conversation back to the assistant.`;
  statusLine(text, 'handoff', event.ts).dataset.state = event.state;
  setHandoff({ state: event.state, operator: event.operator, reason: event.reason, since: event.ts });
}

function statusLine(text, kind, ts) {
  const line = el('p', { className: 'status-line', dataset: { kind } }, [el('span', { text }), el('time', { text: clock(ts) })]);
  ui.transcript.append(line);
  return line;
}

function nearEnd() {
  const log = ui.transcript;
  return log.scrollHeight - log.scrollTop - log.clientHeight < 48;
}

// ---- wiring ----

ui.signInForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = ui.token.value.trim();
  if (!token) {
    ui.signInError.hidden = false;
    ui.signInError.textContent = 'Paste a token first.';
    return;
  }
  ui.token.value = '';
  signIn(token);
});
ui.signOut.addEventListener('click', signOut);
ui.claim.addEventListener('click', () => changeHandoff('handoff.claim', 'claim the conversation'));
ui.release.addEventListener('click', () => changeHandoff('handoff.release', 'release the conversation'));
ui.replyForm.addEventListener('submit', (event) => {
  event.preventDefault();
  sendReply();
});
ui.reply.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendReply();
  }
});
// Waiting times age: redraw them now and then.
setInterval(() => {
  if (inbox.size) renderInbox();
}, 30_000);

const linked = fromFragment();
sessionToOpen = linked.session;
const initial = linked.token || storedToken();
if (initial) signIn(initial);
else showSignIn(null);
