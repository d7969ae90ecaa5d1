// Human handoff in the widget: a "Talk to a person" button that asks for one
// (`handoff.request`), and the `handoff` session events shown as status lines —
// the org's waiting message, "Dana joined the conversation", "You are back with the
// assistant". The button is there only while the assistant holds the conversation.
// docs/widget.md ("Talking to a person") and docs/protocol.md (handoff) describe it.

import { el } from './dom.js';

/** What the customer reads for each state a conversation's handoff enters. */
export const HANDOFF_TEXT = Object.freeze({
  /** While waiting, when the org set no waiting message. */
  waiting: 'Someone will be with you shortly.',
  human: (name) => `${name} joined the conversation`,
  assistant: 'You are back with the assistant',
});

export const HANDOFF_STYLES = `
.handoff-bar { display: flex; justify-content: flex-end; padding: 6px 10px 0; }
.handoff-bar .btn { font-size: 0.85em; padding: 4px 12px; }
.panel[data-view="conversations"] .handoff-bar { display: none; }
.notice[data-kind="handoff"] { font-weight: 600; }
.notice[data-kind="handoff"][data-state="human"] { background: var(--_operator-bg); }
.msg[data-role="operator"] { border-inline-start: 4px solid var(--sb-operator-accent, #b7791f); }
`;

/** The line a `handoff` event shows the customer. */
export function handoffText(event) {
  if (event.state === 'waiting') {
    return typeof event.notice === 'string' && event.notice.trim() ? event.notice : HANDOFF_TEXT.waiting;
  }
  if (event.state === 'human') {
    const name = event.operator?.name || 'Someone from our team';
    return HANDOFF_TEXT.human(name);
  }
  return HANDOFF_TEXT.assistant;
}

/**
 * The "Talk to a person" button and the conversation's handoff state. `request`
 * asks for a person and resolves with the new `Handoff` (or rejects with the
 * gateway's error); `onError` shows why it could not.
 */
export class HandoffControls {
  #state = 'assistant';
  #asking = false;

  constructor(doc, { request, onError }) {
    this.request = request;
    this.onError = onError;
    this.button = el(doc, 'button', { type: 'button', className: 'btn secondary handoff', part: 'handoff-button', text: 'Talk to a person' });
    this.element = el(doc, 'div', { className: 'handoff-bar' }, [this.button]);
    this.button.addEventListener('click', () => this.ask().catch(() => {})); // shown by onError
  }

  /** `assistant`, `waiting` or `human`. */
  get state() {
    return this.#state;
  }

  /** Ask for a person (what the button does). */
  async ask(reason) {
    if (this.#asking || this.#state !== 'assistant') return null;
    this.#asking = true;
    this.#render();
    try {
      const handoff = await this.request(reason);
      if (handoff?.state) this.#set(handoff.state);
      return handoff;
    } catch (error) {
      this.onError(`Could not reach a person: ${error?.message || error}`);
      throw error;
    } finally {
      this.#asking = false;
      this.#render();
    }
  }

  /** A `handoff` event: the conversation's new state, and the line to show for it. */
  onEvent(doc, event) {
    this.#set(event.state);
    return el(doc, 'div', { className: 'notice', dataset: { kind: 'handoff', state: String(event.state) }, text: handoffText(event) });
  }

  /** A new or cleared conversation starts with the assistant. */
  reset() {
    this.#set('assistant');
  }

  #set(state) {
    this.#state = state === 'waiting' || state === 'human' ? state : 'assistant';
    this.#render();
  }

  #render() {
    this.element.hidden = this.#state !== 'assistant';
    this.button.disabled = this.#asking;
    this.button.textContent = this.#asking ? 'Asking for a person…' : 'Talk to a person';
  }
}
