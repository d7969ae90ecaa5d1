// Presence and typing in the widget (docs/protocol.md §3.15): "Dana is typing…" under
// the conversation, a short "Dana joined" / "Dana left" line when staff arrive or
// leave, and `typing` frames sent while the visitor types. Everything here is
// ephemeral: nothing of it is in the transcript.

import { el } from './dom.js';

/** While the user keeps typing, `typing: true` is sent again this often. */
export const TYPING_REFRESH_MS = 3_000;
/** No keystroke for this long: `typing: false`. */
export const TYPING_IDLE_MS = 4_000;
/** Someone is shown typing this long after their last `typing: true` (the protocol's 6 s). */
export const TYPING_SHOWN_MS = 6_000;

/** What a member is called on screen. */
export function memberLabel(member) {
  if (member?.name) return member.name;
  if (member?.role === 'operator') return 'An operator';
  return 'Someone';
}

/** "Dana is typing…", "Dana and Sam are typing…", "Dana, Sam and 2 others are typing…". */
export function typingText(labels) {
  if (!labels.length) return '';
  if (labels.length === 1) return `${labels[0]} is typing…`;
  if (labels.length === 2) return `${labels[0]} and ${labels[1]} are typing…`;
  const rest = labels.length - 2;
  return `${labels[0]}, ${labels[1]} and ${rest} ${rest === 1 ? 'other' : 'others'} are typing…`;
}

/**
 * Sends `typing` for the message box, throttled: `true` on the first keystroke and again
 * every TYPING_REFRESH_MS while typing goes on (the gateway forwards at most one per
 * 2 s), `false` after TYPING_IDLE_MS without a keystroke, when the box is emptied, or
 * when the message is sent.
 */
export class TypingSender {
  #client;
  #typing = false;
  #lastSentAt = 0;
  #idleTimer = null;

  /** @param {() => import('./client.js').SwitchboardClient|null} client */
  constructor(client) {
    this.#client = client;
  }

  /** The message box now holds `text`. */
  input(text) {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    if (!String(text ?? '').trim()) {
      this.stop();
      return;
    }
    const now = Date.now();
    if (!this.#typing || now - this.#lastSentAt >= TYPING_REFRESH_MS) {
      if (this.#client()?.typing(true)) {
        this.#typing = true;
        this.#lastSentAt = now;
      }
    }
    this.#idleTimer = setTimeout(() => this.stop(), TYPING_IDLE_MS);
  }

  /** Typing stopped (sent, emptied, idle, or the conversation changed). */
  stop() {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    if (!this.#typing) return;
    this.#typing = false;
    this.#client()?.typing(false);
  }
}

/**
 * Shows who else is typing, and a line in the log when staff join or leave.
 */
export class PresenceView {
  #doc;
  #line;
  #addNotice;
  #announce;
  #selfId;
  /** Named members now, by user id (from `presence`, then `presence.changed`). */
  #members = new Map();
  /** Who is shown typing: key → {label, timer}. */
  #typists = new Map();

  /**
   * @param {object} options
   * @param {Document} options.doc
   * @param {HTMLElement} options.line where "… is typing…" is shown
   * @param {(node: HTMLElement) => void} options.addNotice appends a line to the log
   * @param {(text: string) => void} options.announce for screen readers
   * @param {() => string|null} options.selfId the user id of this connection
   */
  constructor({ doc, line, addNotice, announce, selfId }) {
    this.#doc = doc;
    this.#line = line;
    this.#addNotice = addNotice;
    this.#announce = announce;
    this.#selfId = selfId;
    this.#render();
  }

  /** The named members now. */
  get members() {
    return [...this.#members.values()];
  }

  /** A `presence` or `presence.changed` frame of the current session. */
  onPresence(frame) {
    if (frame.type === 'presence') {
      this.#members = new Map((frame.members || []).map((m) => [m.user_id, m]));
      return;
    }
    for (const member of frame.joined || []) {
      this.#members.set(member.user_id, member);
      if (this.#isStaff(member)) this.#say(`${memberLabel(member)} joined`, 'joined');
    }
    for (const member of frame.left || []) {
      this.#members.delete(member.user_id);
      this.#clearTypist(this.#key(member));
      if (this.#isStaff(member)) this.#say(`${memberLabel(member)} left`, 'left');
    }
  }

  /** A `typing` frame of the current session. */
  onTyping(frame) {
    const member = frame.member || {};
    if (member.user_id && member.user_id === this.#selfId()) return; // another tab of ours
    const key = this.#key(member);
    if (!frame.typing) {
      this.#clearTypist(key);
      return;
    }
    const current = this.#typists.get(key);
    if (current) clearTimeout(current.timer);
    const timer = setTimeout(() => this.#clearTypist(key), TYPING_SHOWN_MS);
    this.#typists.set(key, { label: memberLabel(member), timer });
    this.#render();
  }

  /** Another conversation, or none: forget everything shown. */
  reset() {
    for (const { timer } of this.#typists.values()) clearTimeout(timer);
    this.#typists.clear();
    this.#members.clear();
    this.#render();
  }

  #isStaff(member) {
    return member.role === 'operator' && member.user_id !== this.#selfId();
  }

  #key(member) {
    return member.user_id ? `u:${member.user_id}` : `role:${member.role || 'other'}`;
  }

  #clearTypist(key) {
    const typist = this.#typists.get(key);
    if (!typist) return;
    clearTimeout(typist.timer);
    this.#typists.delete(key);
    this.#render();
  }

  #say(text, kind) {
    this.#addNotice(el(this.#doc, 'div', { className: 'notice presence', dataset: { kind: 'presence', change: kind }, text }));
    this.#announce(text);
  }

  #render() {
    const text = typingText([...this.#typists.values()].map((t) => t.label));
    this.#line.textContent = text;
    this.#line.hidden = !text;
  }
}
