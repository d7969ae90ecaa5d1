// <switchboard-chat>: the embeddable chat widget. A custom element with a shadow root
// (the host page's CSS cannot reach in), built on SwitchboardClient for the socket,
// resume and retries, and on the safe Markdown renderer for every text that comes
// from a model, an operator or a publisher. No framework. docs/widget.md documents
// every attribute, property, method and DOM event.

import { SwitchboardClient } from './client.js';
import { ConversationList } from './conversations.js';
import { el, icon } from './dom.js';
import { HANDOFF_STYLES, HandoffControls } from './handoff.js';
import { renderMarkdown, safeUrl } from './markdown.js';
import { PresenceView, TypingSender } from './presence.js';
import { STYLES } from './styles.js';

const OBSERVED = [
  'gateway',
  'assistant',
  'token',
  'token-provider',
  'storage-key',
  'chat-title',
  'greeting',
  'placeholder',
  'theme',
  'layout',
  'open',
];
/** Attributes whose change means another connection or conversation. */
const RECONNECTING_ATTRIBUTES = new Set(['gateway', 'token', 'token-provider', 'storage-key', 'assistant']);

const STATUS_TEXT = {
  idle: 'Starting…',
  connecting: 'Connecting…',
  online: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'You are offline. Messages will be sent when you are back online.',
  unauthorized: 'Chat is unavailable: your sign-in was refused. Reload the page to try again.',
  stopped: 'Disconnected',
};

/** The launcher's speech-bubble icon. */
function chatIcon(doc) {
  return icon(doc, 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z');
}

let sharedSheet = null;
function styleSheet() {
  if (sharedSheet === null) {
    try {
      sharedSheet = new CSSStyleSheet();
      sharedSheet.replaceSync(STYLES + HANDOFF_STYLES);
    } catch {
      sharedSheet = false; // no constructable stylesheets: a <style> element instead
    }
  }
  return sharedSheet;
}

/**
 * The `<switchboard-chat>` element. See docs/widget.md.
 */
export class SwitchboardChat extends HTMLElement {
  static get observedAttributes() {
    return OBSERVED;
  }

  /** Where a widget loaded by `<script src=…/widget.js>` finds its gateway by default. */
  static defaultGateway = null;

  #root;
  #ui = null;
  #client = null;
  #started = false;
  #startQueued = false;
  #tokenProvider = null;
  #status = 'idle';
  #conversations = null;
  #presence = null;
  #typingSender = new TypingSender(() => this.#client);
  #handoff = null;

  // Transcript bookkeeping: what is on screen, keyed by the ids the gateway gives.
  #messages = new Map(); // message_id -> element
  #pendingByClientId = new Map(); // client_message_id -> element
  #acceptedPending = new Map(); // message_id -> element accepted before its event arrived
  #turns = new Map(); // turn_id -> turn view
  #toolCards = new Map(); // call_id -> tool card view
  #decisionFrames = new Map(); // frame id of a tool.decide -> tool card view
  #lastEndedTurn = null;
  #runningTurnId = null;
  #renderQueued = new Set();

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: 'open', delegatesFocus: false });
    const sheet = styleSheet();
    if (sheet) this.#root.adoptedStyleSheets = [sheet];
    else this.#root.appendChild(el(document, 'style', { text: STYLES + HANDOFF_STYLES }));
  }

  // ---- attributes and properties ----

  get gateway() {
    return this.getAttribute('gateway') || SwitchboardChat.defaultGateway || (typeof location !== 'undefined' ? location.origin : '');
  }
  set gateway(value) {
    this.setAttribute('gateway', value);
  }
  /** The org's named assistant new conversations talk to (absent: the default one). */
  get assistant() {
    return this.getAttribute('assistant');
  }
  set assistant(value) {
    this.setAttribute('assistant', value);
  }
  get token() {
    return this.getAttribute('token');
  }
  set token(value) {
    if (value) this.setAttribute('token', value);
    else this.removeAttribute('token');
  }
  /** An async function returning a fresh JWT; called before connecting and before `exp`. */
  get tokenProvider() {
    if (this.#tokenProvider) return this.#tokenProvider;
    const name = this.getAttribute('token-provider');
    const fn = name ? globalThis[name] : null;
    return typeof fn === 'function' ? fn : null;
  }
  set tokenProvider(fn) {
    this.#tokenProvider = typeof fn === 'function' ? fn : null;
    this.#restartIfStarted();
  }
  get storageKey() {
    const assistant = this.assistant;
    return this.getAttribute('storage-key') || (assistant ? `assistant:${assistant}` : 'default');
  }
  set storageKey(value) {
    this.setAttribute('storage-key', value);
  }
  get chatTitle() {
    return this.getAttribute('chat-title') || 'Chat';
  }
  set chatTitle(value) {
    this.setAttribute('chat-title', value);
  }
  get greeting() {
    return this.getAttribute('greeting') || '';
  }
  set greeting(value) {
    this.setAttribute('greeting', value);
  }
  get placeholder() {
    return this.getAttribute('placeholder') || 'Type a message…';
  }
  set placeholder(value) {
    this.setAttribute('placeholder', value);
  }
  get theme() {
    return this.getAttribute('theme') || 'light';
  }
  set theme(value) {
    this.setAttribute('theme', value);
  }
  get layout() {
    return this.getAttribute('layout') === 'launcher' ? 'launcher' : 'inline';
  }
  set layout(value) {
    this.setAttribute('layout', value);
  }
  /** Whether the launcher's panel is open (always true inline). */
  get open() {
    return this.layout === 'inline' || this.hasAttribute('open');
  }
  set open(value) {
    this.toggleAttribute('open', Boolean(value));
  }
  /** The SwitchboardClient underneath (null before the element is connected). */
  get client() {
    return this.#client;
  }
  /** The connection state: `connecting`, `online`, `reconnecting`, `offline`, `unauthorized`… */
  get status() {
    return this.#status;
  }

  // ---- lifecycle ----

  connectedCallback() {
    if (!this.#ui) this.#build();
    // Wait a microtask so a script that appends the element and then sets
    // `tokenProvider` connects with the provider, not anonymously first.
    if (!this.#started && !this.#startQueued) {
      this.#startQueued = true;
      queueMicrotask(() => {
        this.#startQueued = false;
        if (this.isConnected && !this.#started) this.#start();
      });
    }
  }

  disconnectedCallback() {
    this.#stop();
  }

  attributeChangedCallback(name, oldValue, newValue) {
    if (oldValue === newValue || !this.#ui) return;
    if (RECONNECTING_ATTRIBUTES.has(name)) {
      this.#restartIfStarted();
      return;
    }
    this.#applyAttributes();
  }

  // ---- methods ----

  /** Open the launcher's panel and focus the message box. */
  openChat() {
    this.open = true;
  }

  /** Close the launcher's panel and return focus to the launcher button. */
  closeChat() {
    this.open = false;
  }

  toggleChat() {
    this.open = !this.open;
  }

  /** Send a message as if typed. Resolves with `{message_id, seq}` once accepted. */
  send(text) {
    if (!this.#client) return Promise.reject(new Error('the widget is not connected to a page'));
    return this.#client.send(text);
  }

  /**
   * Ask for a person (what "Talk to a person" does): resolves with the conversation's
   * new handoff (`{state, …}`), rejects with the gateway's error.
   */
  requestHandoff(reason) {
    if (!this.#handoff) return Promise.reject(new Error('the widget is not connected to a page'));
    return this.#handoff.ask(reason);
  }

  /** Who answers the current conversation: `assistant`, `waiting` or `human`. */
  get handoffState() {
    return this.#handoff?.state ?? 'assistant';
  }

  /**
   * Leave the current conversation. A signed-in user gets a new one at once (it shows
   * in their list); otherwise the next message starts it.
   */
  newConversation() {
    const client = this.#client;
    const idle = client && !client.outbox.length;
    if (idle && client.signedIn && client.sessionId && client.lastSeq === 0) {
      return; // the current conversation has nothing in it yet: it is a new one already
    }
    this.#clearTranscript();
    if (idle && client.signedIn && client.state === 'online') {
      client.newSession().catch((error) => this.#notice(`Could not start a new conversation: ${error.message}`));
    } else {
      client?.forgetSession();
    }
    this.#conversations?.setCurrent(client?.sessionId);
  }

  // ---- building the UI ----

  #build() {
    const doc = document;
    const launcher = el(doc, 'button', {
      type: 'button',
      className: 'launcher',
      part: 'launcher',
      'aria-controls': 'sb-panel',
      'aria-expanded': 'false',
    });
    launcher.appendChild(chatIcon(doc));
    const title = el(doc, 'h2', { id: 'sb-title' });
    const dot = el(doc, 'span', { className: 'dot', 'aria-hidden': 'true' });
    const close = el(doc, 'button', { type: 'button', className: 'close', 'aria-label': 'Close chat', text: '×' });
    const banner = el(doc, 'div', { className: 'banner', role: 'status', hidden: true });
    const log = el(doc, 'div', {
      className: 'log',
      part: 'log',
      role: 'log',
      'aria-live': 'off', // replies are announced whole by `live`, not token by token
      'aria-labelledby': 'sb-title',
      tabindex: '0',
    });
    const live = el(doc, 'div', { className: 'visually-hidden', 'aria-live': 'polite', 'aria-atomic': 'true' });
    const typingLine = el(doc, 'div', { className: 'typing-line', part: 'typing', role: 'status', hidden: true });
    const label = el(doc, 'label', { className: 'visually-hidden', for: 'sb-input', text: 'Message' });
    const input = el(doc, 'textarea', { id: 'sb-input', rows: '1', part: 'input', enterkeyhint: 'send' });
    const stop = el(doc, 'button', { type: 'button', className: 'btn secondary stop', hidden: true, text: 'Stop', 'aria-label': 'Stop the answer' });
    const sendButton = el(doc, 'button', { type: 'submit', className: 'btn send', part: 'send', text: 'Send' });
    const form = el(doc, 'form', { part: 'composer' }, [label, input, stop, sendButton]);
    const panel = el(doc, 'section', { id: 'sb-panel', className: 'panel', part: 'panel' });
    const conversations = new ConversationList({
      panel,
      client: () => this.#client,
      onOpen: (sessionId) => this.#openConversation(sessionId),
      onNew: () => {
        this.newConversation();
        input.focus();
      },
      onDeleted: (sessionId, wasCurrent) => {
        if (wasCurrent) this.#clearTranscript();
        this.#dispatch('switchboard:session', { session_id: null, deleted: sessionId });
      },
    });
    this.#conversations = conversations;
    this.#handoff = new HandoffControls(doc, {
      request: (reason) => (this.#client ? this.#client.requestHandoff(reason) : Promise.reject(new Error('not connected'))),
      onError: (text) => this.#notice(text),
    });
    const header = el(doc, 'header', { part: 'header' }, [dot, title, conversations.toggleButton, conversations.newButton, close]);
    panel.append(header, banner, conversations.element, log, typingLine, live, this.#handoff.element, form);
    this.#root.append(launcher, panel);
    this.#ui = { launcher, title, close, header, banner, log, typingLine, live, input, stop, sendButton, form, panel, greeting: null };
    this.#presence = new PresenceView({
      doc,
      line: typingLine,
      addNotice: (node) => {
        const stick = this.#nearEnd();
        log.appendChild(node);
        this.#scrollToEnd(stick);
      },
      announce: (text) => this.#announce(text),
      selfId: () => this.#client?.principal?.user_id ?? null,
    });

    launcher.addEventListener('click', () => this.toggleChat());
    close.addEventListener('click', () => this.closeChat());
    panel.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && this.layout === 'launcher' && this.open) {
        event.stopPropagation();
        this.closeChat();
      }
    });
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.#submit();
    });
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.#submit();
      }
    });
    input.addEventListener('input', () => {
      this.#autosize();
      this.#typingSender.input(input.value);
    });
    stop.addEventListener('click', () => {
      if (this.#runningTurnId) this.#client?.cancelTurn(this.#runningTurnId);
    });
    this.#applyAttributes();
  }

  #applyAttributes() {
    const ui = this.#ui;
    const launcherMode = this.layout === 'launcher';
    ui.title.textContent = this.chatTitle;
    ui.input.placeholder = this.placeholder;
    ui.input.setAttribute('aria-label', `Message to ${this.chatTitle}`);
    ui.launcher.hidden = !launcherMode;
    ui.close.hidden = !launcherMode;
    ui.launcher.setAttribute('aria-label', this.open && launcherMode ? `Close chat: ${this.chatTitle}` : `Open chat: ${this.chatTitle}`);
    ui.launcher.setAttribute('aria-expanded', String(this.open));
    if (launcherMode) {
      ui.panel.setAttribute('role', 'dialog');
      ui.panel.setAttribute('aria-modal', 'false');
    } else {
      ui.panel.setAttribute('role', 'region');
      ui.panel.removeAttribute('aria-modal');
    }
    ui.panel.setAttribute('aria-labelledby', 'sb-title');
    const wasHidden = ui.panel.hidden;
    // Read before hiding: a hidden element loses focus when the browser next renders.
    const focusInside = !wasHidden && ui.panel.contains(this.#root.activeElement);
    ui.panel.hidden = !this.open;
    if (launcherMode && wasHidden && this.open) {
      requestAnimationFrame(() => {
        ui.input.focus();
        this.#scrollToEnd(true);
      });
    } else if (launcherMode && !this.open && focusInside) {
      ui.launcher.focus();
    }
    this.#renderGreeting();
  }

  #renderGreeting() {
    const ui = this.#ui;
    const text = this.greeting;
    if (!text) {
      ui.greeting?.remove();
      ui.greeting = null;
      return;
    }
    if (!ui.greeting) {
      ui.greeting = el(document, 'div', { className: 'msg greeting', dataset: { role: 'assistant' } });
      ui.log.prepend(ui.greeting);
    }
    ui.greeting.replaceChildren(renderMarkdown(text));
  }

  #autosize() {
    const input = this.#ui.input;
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight + 2, 140)}px`;
  }

  #submit() {
    const input = this.#ui.input;
    const text = input.value;
    if (!text.trim() || !this.#client) return;
    this.#typingSender.stop();
    input.value = '';
    this.#autosize();
    this.#client.send(text).catch(() => {
      // Shown on the message itself (the `outbox` event with state `failed`).
    });
  }

  // ---- the client ----

  #start() {
    this.#started = true;
    const providerAttribute = this.getAttribute('token-provider');
    const hasProvider = Boolean(this.#tokenProvider || providerAttribute);
    let storage = null;
    try {
      storage = globalThis.localStorage ?? null;
    } catch {
      storage = null; // blocked third-party storage: the conversation lasts one page view
    }
    let client;
    try {
      client = new SwitchboardClient({
        gateway: this.gateway,
        token: this.token,
        // Resolved at each call, so a provider defined after the element still counts.
        tokenProvider: hasProvider ? () => this.#callTokenProvider() : null,
        storage,
        storageKey: this.storageKey,
        assistant: this.assistant || undefined,
      });
    } catch (error) {
      this.#setStatus('unauthorized', String(error?.message || error));
      return;
    }
    this.#client = client;
    client.addEventListener('status', (e) => this.#setStatus(e.detail.state, e.detail.reason, e.detail.retryInMs));
    client.addEventListener('welcome', (e) => {
      const max = e.detail.limits?.max_text_chars;
      if (max) this.#ui.input.maxLength = max;
      this.#conversations.setAvailable(client.signedIn);
    });
    client.addEventListener('event', (e) => this.#onEvent(e.detail));
    client.addEventListener('presence', (e) => {
      this.#presence.onPresence(e.detail);
      this.#dispatch('switchboard:presence', { session_id: e.detail.session_id, members: this.#presence.members, others: e.detail.others, joined: e.detail.joined ?? [], left: e.detail.left ?? [] });
    });
    client.addEventListener('typing', (e) => {
      this.#presence.onTyping(e.detail);
      this.#dispatch('switchboard:typing', { session_id: e.detail.session_id, member: e.detail.member, typing: e.detail.typing });
    });
    client.addEventListener('outbox', (e) => this.#onOutbox(e.detail));
    client.addEventListener('session', (e) => {
      if (e.detail.recovered === false) {
        this.#notice('Some earlier messages of this conversation are no longer available.');
      }
      this.#conversations.setCurrent(e.detail.session_id);
      this.#dispatch('switchboard:session', e.detail);
    });
    client.addEventListener('reset', () => {
      this.#conversations.setCurrent(null);
      this.#clearTranscript();
      this.#notice('The previous conversation has ended. Your next message starts a new one.');
      this.#dispatch('switchboard:session', { session_id: null, reset: true });
    });
    client.addEventListener('tool.decided', (e) => {
      const card = this.#toolCards.get(e.detail.call_id);
      if (card) this.#decided(card, e.detail.approved);
    });
    client.addEventListener('error', (e) => {
      const card = e.detail.re ? this.#decisionFrames.get(e.detail.re) : null;
      if (card) {
        this.#decisionFrames.delete(e.detail.re);
        card.state.textContent = `Could not send the decision: ${e.detail.message}`;
        for (const button of card.buttons) button.disabled = false;
      }
      this.#dispatch('switchboard:error', e.detail);
    });
    client.start();
  }

  async #callTokenProvider() {
    const provider = this.tokenProvider;
    if (!provider) throw new Error('no token provider is defined');
    return provider();
  }

  #stop() {
    this.#typingSender.stop();
    this.#client?.stop();
    this.#client = null;
    this.#started = false;
    this.#conversations?.setAvailable(false);
  }

  /** Show another of the user's conversations: its whole history replays into the log. */
  #openConversation(sessionId) {
    const client = this.#client;
    if (!client) return;
    if (sessionId === client.sessionId) {
      this.#conversations.close({ focus: false });
      this.#ui.input.focus();
      return;
    }
    if (client.outbox.length || client.state !== 'online') {
      this.#conversations.say(client.outbox.length ? 'Your message is still being sent; try again in a moment.' : 'Not connected; try again in a moment.', 'error');
      return;
    }
    client.openSession(sessionId).then(
      () => {},
      (error) => {
        if (error.code !== 'not_found') this.#notice(`Could not open that conversation: ${error.message}`);
      },
    );
    // The log is cleared at once; the replay fills it (events of the old one are dropped).
    this.#clearTranscript();
    this.#conversations.setCurrent(sessionId);
    this.#conversations.close({ focus: false });
    this.#ui.input.focus();
  }

  #restartIfStarted() {
    if (!this.#started) return;
    this.#stop();
    this.#clearTranscript();
    if (this.isConnected) this.#start();
  }

  #setStatus(state, reason, retryInMs) {
    this.#status = state;
    const ui = this.#ui;
    ui.panel.dataset.status = state;
    const showBanner = state !== 'online' && state !== 'idle';
    ui.banner.hidden = !showBanner;
    ui.banner.dataset.kind = state === 'unauthorized' ? 'error' : 'info';
    let text = STATUS_TEXT[state] || state;
    if (state === 'reconnecting' && retryInMs) text = `Reconnecting… (next try in ${Math.max(1, Math.round(retryInMs / 1000))} s)`;
    ui.banner.textContent = text;
    this.#dispatch('switchboard:status', { state, reason: reason ?? null, retryInMs: retryInMs ?? null });
  }

  // ---- transcript ----

  #clearTranscript() {
    const ui = this.#ui;
    if (!ui) return;
    ui.log.replaceChildren();
    ui.greeting = null;
    this.#renderGreeting();
    this.#messages.clear();
    this.#pendingByClientId.clear();
    this.#acceptedPending.clear();
    this.#turns.clear();
    this.#toolCards.clear();
    this.#decisionFrames.clear();
    this.#lastEndedTurn = null;
    this.#setRunningTurn(null);
    this.#typingSender.stop();
    this.#presence?.reset();
    this.#handoff?.reset();
  }

  #onEvent(event) {
    const stick = this.#nearEnd();
    switch (event.type) {
      case 'message':
        this.#onMessage(event);
        break;
      case 'turn.start':
        this.#onTurnStart(event);
        break;
      case 'turn.delta': {
        const turn = this.#turnView(event.turn_id);
        turn.text += event.text;
        this.#queueRender(turn);
        break;
      }
      case 'tool.request':
        this.#onToolRequest(event);
        break;
      case 'tool.result':
        this.#onToolResult(event);
        break;
      case 'turn.end':
        this.#onTurnEnd(event);
        break;
      case 'event':
        this.#onBackendEvent(event);
        break;
      case 'handoff':
        this.#onHandoff(event);
        break;
      default:
        break;
    }
    this.#scrollToEnd(stick);
  }

  #onMessage(event) {
    const { message_id: id, role, text, author } = event;
    this.#dispatch('switchboard:message', { message_id: id, role, text, author: author ?? null, seq: event.seq, session_id: event.session_id });
    if (this.#messages.has(id)) return;
    if (role === 'user') {
      const pending = this.#acceptedPending.get(id);
      if (pending) {
        // Our own message, already on screen since it was typed.
        this.#acceptedPending.delete(id);
        this.#confirmUserBubble(pending, id);
        return;
      }
      const bubble = this.#userBubble(text);
      this.#confirmUserBubble(bubble, id);
      this.#ui.log.appendChild(bubble);
      return;
    }
    if (role === 'assistant') {
      const ended = this.#lastEndedTurn;
      if (ended && !ended.messageId && ended.status === 'completed' && ended.text === text) {
        // The transcript copy of the turn that just ended: already on screen.
        ended.messageId = id;
        ended.el.dataset.messageId = id;
        this.#messages.set(id, ended.el);
        return;
      }
      const bubble = el(document, 'div', { className: 'msg', dataset: { role: 'assistant', messageId: id } });
      const body = el(document, 'div', { className: 'body' });
      body.appendChild(renderMarkdown(text));
      bubble.appendChild(body);
      this.#messages.set(id, bubble);
      this.#ui.log.appendChild(bubble);
      return;
    }
    if (role === 'operator') {
      const name = author ? `${author} (operator)` : 'Operator';
      const bubble = el(document, 'div', { className: 'msg', dataset: { role: 'operator', messageId: id } }, [
        el(document, 'span', { className: 'author', text: name }),
      ]);
      const body = el(document, 'div', { className: 'body' });
      body.appendChild(renderMarkdown(text));
      bubble.appendChild(body);
      this.#messages.set(id, bubble);
      this.#ui.log.appendChild(bubble);
      this.#announce(`${name}: ${body.textContent}`);
      return;
    }
    const notice = this.#notice(text);
    this.#messages.set(id, notice);
  }

  #userBubble(text) {
    return el(document, 'div', { className: 'msg', dataset: { role: 'user' } }, [
      el(document, 'span', { className: 'text', text }),
    ]);
  }

  #confirmUserBubble(bubble, id) {
    bubble.dataset.messageId = id;
    bubble.dataset.state = 'sent';
    bubble.querySelector('.meta')?.remove();
    this.#messages.set(id, bubble);
  }

  #onOutbox(detail) {
    const { client_message_id: cmid, state } = detail;
    let bubble = this.#pendingByClientId.get(cmid);
    if (state === 'queued') {
      if (bubble) return;
      const stick = true;
      bubble = this.#userBubble(detail.text);
      bubble.dataset.state = 'pending';
      bubble.dataset.clientMessageId = cmid;
      bubble.appendChild(el(document, 'span', { className: 'meta', text: 'Sending…' }));
      this.#pendingByClientId.set(cmid, bubble);
      this.#ui.log.appendChild(bubble);
      this.#scrollToEnd(stick);
      return;
    }
    if (!bubble) return;
    this.#pendingByClientId.delete(cmid);
    if (state === 'accepted') {
      if (this.#messages.has(detail.message_id)) {
        // Its `message` event came first and is already shown.
        bubble.remove();
      } else {
        bubble.querySelector('.meta').textContent = 'Sent';
        this.#acceptedPending.set(detail.message_id, bubble);
      }
    } else if (state === 'failed') {
      bubble.dataset.state = 'failed';
      bubble.querySelector('.meta').textContent = `Not sent: ${detail.error?.message || 'refused'}`;
    }
  }

  #turnView(turnId) {
    let turn = this.#turns.get(turnId);
    if (turn) return turn;
    const typing = el(document, 'span', { className: 'typing', 'aria-label': 'The assistant is typing' }, [
      el(document, 'span'),
      el(document, 'span'),
      el(document, 'span'),
    ]);
    const bubble = el(document, 'div', { className: 'msg', 'aria-busy': 'true', dataset: { role: 'assistant', turnId, state: 'streaming' } }, [typing]);
    // The reply's text in segments: a tool card splits it, so what the model says after
    // the tool ran reads below the card. `start` is the segment's offset in the text.
    turn = { id: turnId, el: bubble, typing, segments: [], text: '', status: null, messageId: null, replyTo: null, note: null };
    this.#addSegment(turn);
    this.#turns.set(turnId, turn);
    this.#ui.log.appendChild(bubble);
    return turn;
  }

  #addSegment(turn) {
    const body = el(document, 'div', { className: 'body current' });
    turn.segments.at(-1)?.body.classList.remove('current');
    turn.segments.push({ body, start: turn.text.length });
    turn.el.insertBefore(body, turn.typing);
  }

  /** Re-render a streaming reply at most once per frame, however fast deltas come. */
  #queueRender(turn) {
    if (this.#renderQueued.has(turn)) return;
    this.#renderQueued.add(turn);
    requestAnimationFrame(() => {
      this.#renderQueued.delete(turn);
      const stick = this.#nearEnd();
      this.#renderTurn(turn);
      this.#scrollToEnd(stick);
    });
  }

  #renderTurn(turn) {
    const { segments } = turn;
    segments.forEach((segment, i) => {
      const end = i + 1 < segments.length ? segments[i + 1].start : turn.text.length;
      segment.body.replaceChildren(renderMarkdown(turn.text.slice(segment.start, end)));
    });
    // Typing dots while the newest part has no words yet.
    turn.typing.hidden = turn.status !== null || turn.text.length > segments.at(-1).start;
  }

  /** The reply as plain text (for the live region), without its tool cards. */
  #turnText(turn) {
    return turn.segments.map((segment) => segment.body.textContent).join(' ').trim();
  }

  #onTurnStart(event) {
    const turn = this.#turnView(event.turn_id);
    turn.replyTo = event.reply_to ?? null;
    // A new answer to a message whose earlier answer was interrupted: that one's
    // marker stops promising and points here.
    for (const other of this.#turns.values()) {
      if (other !== turn && other.replyTo && other.replyTo === turn.replyTo && other.note?.dataset.kind === 'interrupted') {
        other.note.textContent = 'Interrupted — answered again below.';
      }
    }
    this.#setRunningTurn(event.turn_id);
  }

  #onTurnEnd(event) {
    const turn = this.#turnView(event.turn_id);
    // The replica that was writing this reply stopped; another one ended the turn
    // without having seen its deltas, so the end's text is empty: keep what streamed.
    const interrupted = event.status === 'failed' && event.code === 'replica_lost';
    turn.text = interrupted && !event.text ? turn.text : (event.text ?? turn.text);
    turn.status = event.status;
    turn.el.dataset.state = interrupted ? 'interrupted' : event.status;
    turn.el.removeAttribute('aria-busy');
    this.#renderQueued.delete(turn);
    this.#renderTurn(turn);
    if (event.status === 'cancelled') {
      turn.el.appendChild(el(document, 'span', { className: 'turn-note', text: 'Stopped.' }));
    } else if (interrupted && event.retrying) {
      turn.note = el(document, 'span', { className: 'turn-note', dataset: { kind: 'interrupted' }, text: 'Interrupted — answering again…' });
      turn.el.appendChild(turn.note);
      this.#announce('The answer was interrupted. Answering again.');
    } else if (interrupted) {
      turn.note = el(document, 'span', { className: 'turn-note', dataset: { kind: 'failed' }, text: `Interrupted${event.error ? `: ${event.error}` : '.'}` });
      turn.el.appendChild(turn.note);
    } else if (event.status === 'failed') {
      turn.el.appendChild(el(document, 'span', { className: 'turn-note', dataset: { kind: 'failed' }, text: `The answer failed${event.error ? `: ${event.error}` : '.'}` }));
    }
    if (Array.isArray(event.sources) && event.sources.length) {
      turn.el.appendChild(this.#sources(event.sources));
    }
    for (const card of this.#toolCards.values()) {
      if (card.turnId === event.turn_id && !card.settled) this.#settleCard(card, 'No decision was made before the answer ended.');
    }
    if (this.#runningTurnId === event.turn_id) this.#setRunningTurn(null);
    this.#lastEndedTurn = turn;
    if (event.status === 'completed') this.#announce(`${this.chatTitle}: ${this.#turnText(turn)}`);
    this.#dispatch('switchboard:turn-end', { ...event });
  }

  #sources(sources) {
    const list = el(document, 'ol');
    for (const source of sources) {
      const title = String(source.title || source.doc_id || 'Untitled');
      const href = safeUrl(source.uri);
      const item = el(document, 'li');
      if (href) {
        item.appendChild(el(document, 'a', { href, target: '_blank', rel: 'noopener noreferrer nofollow', text: title }));
      } else {
        item.textContent = title;
      }
      list.appendChild(item);
    }
    return el(document, 'div', { className: 'sources', part: 'sources' }, [el(document, 'h3', { text: 'Sources' }), list]);
  }

  #setRunningTurn(turnId) {
    this.#runningTurnId = turnId;
    const stop = this.#ui.stop;
    const hadFocus = this.#root.activeElement === stop;
    stop.hidden = !turnId;
    if (hadFocus && !turnId) this.#ui.input.focus();
  }

  // ---- tools ----

  #onToolRequest(event) {
    const turn = this.#turnView(event.turn_id);
    if (this.#toolCards.has(event.call_id)) return;
    const args = el(document, 'pre', { text: JSON.stringify(event.arguments ?? {}, null, 2) });
    const approve = el(document, 'button', { type: 'button', className: 'btn approve', text: 'Approve' });
    const deny = el(document, 'button', { type: 'button', className: 'btn secondary deny', text: 'Deny' });
    const state = el(document, 'span', { className: 'state', role: 'status' });
    const heading = el(document, 'h3', { text: `The assistant wants to use ${event.tool}` });
    const card = el(document, 'div', { className: 'tool', part: 'tool', role: 'group', dataset: { callId: event.call_id } }, [
      heading,
      args,
      el(document, 'div', { className: 'actions' }, [approve, deny]),
      state,
    ]);
    const view = { el: card, callId: event.call_id, turnId: event.turn_id, buttons: [approve, deny], state, settled: false };
    this.#toolCards.set(event.call_id, view);
    turn.el.insertBefore(card, turn.typing);
    this.#addSegment(turn);
    const decide = (approved) => {
      // A disabled button drops focus to the page; keep it in the widget instead.
      const hadFocus = view.buttons.includes(this.#root.activeElement);
      for (const button of view.buttons) button.disabled = true;
      if (hadFocus) this.#ui.input.focus();
      state.textContent = approved ? 'Approving…' : 'Denying…';
      const frameId = this.#client?.decideTool(event.call_id, approved);
      if (typeof frameId === 'string') this.#decisionFrames.set(frameId, view);
      else {
        state.textContent = 'Not connected; try again in a moment.';
        for (const button of view.buttons) button.disabled = false;
      }
    };
    approve.addEventListener('click', () => decide(true));
    deny.addEventListener('click', () => decide(false));
    this.#announce(`The assistant asks to use ${event.tool}. Approve or deny.`);
    this.#dispatch('switchboard:tool-request', { ...event });
  }

  #decided(card, approved) {
    for (const [frameId, view] of this.#decisionFrames) if (view === card) this.#decisionFrames.delete(frameId);
    this.#settleCard(card, approved ? 'Approved.' : 'Denied.');
  }

  #onToolResult(event) {
    const card = this.#toolCards.get(event.call_id);
    if (!card) return;
    this.#settleCard(card, event.ok ? 'Approved; done.' : 'Not carried out.');
  }

  #settleCard(card, text) {
    const hadFocus = card.buttons.includes(this.#root.activeElement);
    card.settled = true;
    card.state.textContent = text;
    for (const button of card.buttons) button.remove();
    if (hadFocus) this.#ui.input.focus();
  }

  // ---- backend events ----

  #onBackendEvent(event) {
    const detail = {
      name: event.name,
      data: event.data,
      publisher: event.publisher ?? null,
      session_id: event.session_id ?? null,
      stream: event.stream ?? null,
      seq: event.seq ?? null,
    };
    const shown = this.#dispatch('switchboard:event', detail, { cancelable: true });
    if (!shown) return; // the host page called preventDefault(): it shows the event itself
    const text = typeof event.data?.text === 'string' ? event.data.text : typeof event.data === 'string' ? event.data : null;
    if (text === null) return; // data without text is for the host page only
    const notice = el(document, 'div', { className: 'notice', dataset: { kind: 'event', name: String(event.name) } });
    notice.appendChild(renderMarkdown(text));
    this.#ui.log.appendChild(notice);
    this.#announce(notice.textContent);
  }

  #onHandoff(event) {
    const line = this.#handoff.onEvent(document, event);
    this.#ui.log.appendChild(line);
    this.#announce(line.textContent);
    this.#dispatch('switchboard:handoff', {
      state: event.state,
      by: event.by ?? null,
      operator: event.operator ?? null,
      reason: event.reason ?? null,
      notice: event.notice ?? null,
      session_id: event.session_id ?? null,
      seq: event.seq ?? null,
    });
  }

  #notice(text) {
    const notice = el(document, 'div', { className: 'notice', dataset: { kind: 'system' }, text });
    this.#ui.log.appendChild(notice);
    return notice;
  }

  // ---- helpers ----

  #announce(text) {
    // Cleared first so the same words twice are still announced twice.
    const live = this.#ui.live;
    live.textContent = '';
    requestAnimationFrame(() => {
      live.textContent = text;
    });
  }

  #nearEnd() {
    const log = this.#ui.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < 48;
  }

  #scrollToEnd(stick) {
    if (stick) this.#ui.log.scrollTop = this.#ui.log.scrollHeight;
  }

  /** Dispatch a DOM event from the host element; false when a listener cancelled it. */
  #dispatch(type, detail, { cancelable = false } = {}) {
    return this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true, cancelable }));
  }
}

/** Define `<switchboard-chat>` (once). `gateway` becomes the default gateway URL. */
export function defineSwitchboardChat({ gateway } = {}) {
  if (gateway) SwitchboardChat.defaultGateway = gateway;
  if (!customElements.get('switchboard-chat')) customElements.define('switchboard-chat', SwitchboardChat);
  return SwitchboardChat;
}
