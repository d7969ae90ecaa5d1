// The conversation list of a signed-in user: a header button that opens it over the
// transcript, a "new conversation" button, and the list itself (newest activity first,
// paged with `next_cursor`), from which a conversation is opened, renamed or deleted.
// Anonymous visitors have one conversation and never see any of this.

import { el, icon } from './dom.js';

const PAGE_SIZE = 20;
const UNTITLED = 'New conversation';

const UNITS = [
  ['year', 365 * 86400],
  ['month', 30 * 86400],
  ['week', 7 * 86400],
  ['day', 86400],
  ['hour', 3600],
  ['minute', 60],
];

/** "5 minutes ago", "yesterday", in the browser's language. */
export function relativeTime(thenMs, nowMs = Date.now(), locale = undefined) {
  const format = new Intl.RelativeTimeFormat(locale, { numeric: 'auto' });
  const seconds = Math.round((thenMs - nowMs) / 1000);
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return format.format(Math.trunc(seconds / size), unit);
  }
  return format.format(0, 'second');
}

export class ConversationList {
  #doc;
  #panel;
  #client;
  #onOpen;
  #onNew;
  #onDeleted;
  #available = false;
  #currentId = null;
  #nextCursor = null;
  #state = 'active'; // which conversations are listed: `active` or `archived`
  #loading = 0; // which load is current: an older answer is dropped
  #items = new Map(); // session_id -> {li, summary}

  /**
   * @param {object} options
   * @param {HTMLElement} options.panel the widget's panel (gets `data-view`)
   * @param {() => import('./client.js').SwitchboardClient|null} options.client
   * @param {(sessionId:string) => void} options.onOpen a conversation was chosen
   * @param {() => void} options.onNew "new conversation" was pressed
   * @param {(sessionId:string, wasCurrent:boolean) => void} options.onDeleted a
   *   conversation was deleted
   */
  constructor({ panel, client, onOpen, onNew, onDeleted }) {
    const doc = panel.ownerDocument;
    this.#doc = doc;
    this.#panel = panel;
    this.#client = client;
    this.#onOpen = onOpen;
    this.#onNew = onNew;
    this.#onDeleted = onDeleted;

    this.toggleButton = el(doc, 'button', {
      type: 'button',
      className: 'head-btn conversations-toggle',
      'aria-label': 'Conversations',
      title: 'Conversations',
      'aria-controls': 'sb-conversations',
      'aria-expanded': 'false',
      hidden: true,
    }, [icon(doc, 'M4 6h16M4 12h16M4 18h10')]);
    this.newButton = el(doc, 'button', {
      type: 'button',
      className: 'head-btn new-conversation',
      'aria-label': 'New conversation',
      title: 'New conversation',
      hidden: true,
    }, [icon(doc, 'M12 5v14M5 12h14')]);
    this.heading = el(doc, 'h3', { id: 'sb-conversations-title', tabindex: '-1', text: 'Conversations' });
    this.stateButton = el(doc, 'button', { type: 'button', className: 'link-btn conv-state', text: 'Show archived' });
    this.status = el(doc, 'p', { className: 'conv-status', role: 'status' });
    this.list = el(doc, 'ul', { className: 'conv-list', 'aria-labelledby': 'sb-conversations-title' });
    this.more = el(doc, 'button', { type: 'button', className: 'btn secondary conv-more', text: 'Load more', hidden: true });
    this.element = el(doc, 'section', {
      id: 'sb-conversations',
      className: 'conversations',
      part: 'conversations',
      'aria-labelledby': 'sb-conversations-title',
      hidden: true,
    }, [el(doc, 'div', { className: 'conv-head' }, [this.heading, this.stateButton]), this.status, this.list, this.more]);

    this.toggleButton.addEventListener('click', () => (this.isOpen ? this.close() : this.open()));
    this.newButton.addEventListener('click', () => {
      this.close({ focus: false });
      this.#onNew();
    });
    this.more.addEventListener('click', () => this.#load({ append: true }));
    this.stateButton.addEventListener('click', () => this.#show(this.#state === 'active' ? 'archived' : 'active'));
    this.element.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && !event.defaultPrevented) {
        event.stopPropagation(); // closes the list, not the launcher's panel
        this.close();
      }
    });
  }

  get isOpen() {
    return !this.element.hidden;
  }

  /** Show the controls (signed-in users) or hide them and the list (anonymous). */
  setAvailable(available) {
    this.#available = Boolean(available);
    this.toggleButton.hidden = !this.#available;
    this.newButton.hidden = !this.#available;
    if (!this.#available) this.close({ focus: false });
  }

  /** Mark which conversation is on screen. */
  setCurrent(sessionId) {
    this.#currentId = sessionId || null;
    for (const [id, { li }] of this.#items) this.#markCurrent(li, id === this.#currentId);
  }

  open() {
    if (!this.#available) return;
    this.#show('active', { focus: false });
    this.element.hidden = false;
    this.#panel.dataset.view = 'conversations';
    this.toggleButton.setAttribute('aria-expanded', 'true');
    this.heading.focus();
  }

  /** List the active or the archived conversations. */
  #show(state, { focus = true } = {}) {
    this.#state = state;
    this.heading.textContent = state === 'archived' ? 'Archived conversations' : 'Conversations';
    this.stateButton.textContent = state === 'archived' ? 'Show active' : 'Show archived';
    this.list.replaceChildren();
    this.#items.clear();
    this.more.hidden = true;
    if (focus) this.heading.focus();
    this.#load({ append: false });
  }

  /** Back to the transcript; focus returns to the toggle unless `focus` is false. */
  close({ focus = true } = {}) {
    if (!this.isOpen) return;
    const hadFocus = this.element.contains(this.element.getRootNode().activeElement);
    this.element.hidden = true;
    delete this.#panel.dataset.view;
    this.toggleButton.setAttribute('aria-expanded', 'false');
    if (focus && hadFocus) this.toggleButton.focus();
  }

  // ---- loading ----

  async #load({ append }) {
    const client = this.#client();
    if (!client) return;
    const load = ++this.#loading;
    this.more.disabled = true;
    this.say(append ? 'Loading more…' : 'Loading conversations…');
    let page;
    try {
      page = await client.listSessions({ state: this.#state, cursor: append ? this.#nextCursor : undefined, limit: PAGE_SIZE });
    } catch (error) {
      if (load !== this.#loading) return;
      this.more.disabled = false;
      this.say(`Could not load the conversations: ${error.message}`, 'error');
      return;
    }
    if (load !== this.#loading) return;
    if (!append) {
      this.list.replaceChildren();
      this.#items.clear();
    }
    for (const summary of page.sessions || []) this.#put(summary);
    this.#nextCursor = page.next_cursor || null;
    this.more.hidden = !this.#nextCursor;
    this.more.disabled = false;
    this.say(this.#items.size ? '' : this.#emptyText());
  }

  #emptyText() {
    return this.#state === 'archived' ? 'No archived conversations.' : 'No conversations yet.';
  }

  /** Take a conversation off this list, saying why, with focus on its neighbour. */
  #drop(li, sessionId, message) {
    const next = li.nextElementSibling || li.previousElementSibling;
    li.remove();
    this.#items.delete(sessionId);
    this.say(this.#items.size ? message : `${message} ${this.#emptyText()}`);
    (next?.querySelector('.conv-open') || this.heading).focus();
  }

  /** A line above the list: progress, an empty list, or what went wrong. */
  say(text, kind = 'info') {
    this.status.textContent = text;
    this.status.dataset.kind = kind;
    this.status.hidden = !text;
  }

  // ---- items ----

  /** Add a conversation to the list, or redraw it where it is. */
  #put(summary) {
    const existing = this.#items.get(summary.session_id);
    const li = this.#item(summary);
    if (existing) existing.li.replaceWith(li);
    else this.list.appendChild(li);
    this.#items.set(summary.session_id, { li, summary });
    return li;
  }

  #item(summary) {
    const doc = this.#doc;
    const id = summary.session_id;
    const title = summary.title || UNTITLED;
    const when = new Date(summary.last_activity_at);
    const time = el(doc, 'time', { className: 'conv-time', datetime: when.toISOString(), title: when.toLocaleString(), text: relativeTime(summary.last_activity_at) });
    const openButton = el(doc, 'button', { type: 'button', className: 'conv-open' }, [
      el(doc, 'span', { className: 'conv-title', text: title }),
      summary.preview ? el(doc, 'span', { className: 'conv-preview', text: summary.preview }) : null,
      time,
    ]);
    const rename = el(doc, 'button', { type: 'button', className: 'link-btn conv-rename', text: 'Rename', 'aria-label': `Rename: ${title}` });
    const archived = this.#state === 'archived';
    const archive = el(doc, 'button', { type: 'button', className: 'link-btn conv-archive', text: archived ? 'Unarchive' : 'Archive', 'aria-label': `${archived ? 'Unarchive' : 'Archive'}: ${title}` });
    const remove = el(doc, 'button', { type: 'button', className: 'link-btn conv-delete', text: 'Delete', 'aria-label': `Delete: ${title}` });
    const actions = el(doc, 'div', { className: 'conv-actions' }, [rename, archive, remove]);
    const li = el(doc, 'li', { className: 'conv' }, [openButton, actions]);
    li.dataset.sessionId = id;
    this.#markCurrent(li, id === this.#currentId);
    openButton.addEventListener('click', () => this.#onOpen(id));
    rename.addEventListener('click', () => this.#startRename(li, summary));
    remove.addEventListener('click', () => this.#confirmDelete(li, summary));
    archive.addEventListener('click', () => this.#setState(li, summary, archived ? 'active' : 'archived'));
    return li;
  }

  async #setState(li, summary, state) {
    const title = summary.title || UNTITLED;
    try {
      await this.#client()?.updateSession(summary.session_id, { state });
    } catch (error) {
      this.say(`Could not ${state === 'archived' ? 'archive' : 'unarchive'} it: ${error.message}`, 'error');
      return;
    }
    this.#drop(li, summary.session_id, state === 'archived' ? `Archived “${title}”.` : `“${title}” is active again.`);
  }

  #markCurrent(li, current) {
    const button = li.querySelector('.conv-open');
    li.toggleAttribute('data-current', current);
    if (current) button.setAttribute('aria-current', 'true');
    else button.removeAttribute('aria-current');
  }

  /** Swap an item's actions for a small form: `question` and its buttons. */
  #inline(li, parts, restore) {
    const actions = li.querySelector('.conv-actions');
    const box = el(this.#doc, 'div', { className: 'conv-confirm', role: 'group' }, parts);
    actions.hidden = true;
    li.appendChild(box);
    const done = (focusTarget) => {
      box.remove();
      actions.hidden = false;
      (focusTarget || restore)?.focus();
    };
    box.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        event.stopPropagation();
        done();
      }
    });
    return { box, done };
  }

  #confirmDelete(li, summary) {
    const doc = this.#doc;
    const title = summary.title || UNTITLED;
    const question = el(doc, 'span', { className: 'conv-question', text: `Delete “${title}” for good?` });
    const yes = el(doc, 'button', { type: 'button', className: 'btn danger conv-confirm-delete', text: 'Delete', 'aria-label': `Delete “${title}” for good` });
    const no = el(doc, 'button', { type: 'button', className: 'btn secondary conv-cancel', text: 'Cancel' });
    const { box, done } = this.#inline(li, [question, yes, no], li.querySelector('.conv-delete'));
    box.setAttribute('aria-label', `Delete ${title}`);
    no.addEventListener('click', () => done());
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      no.disabled = true;
      try {
        await this.#client()?.deleteSession(summary.session_id);
      } catch (error) {
        question.textContent = `Could not delete it: ${error.message}`;
        yes.disabled = false;
        no.disabled = false;
        return;
      }
      this.#drop(li, summary.session_id, `Deleted “${title}”.`);
      const wasCurrent = summary.session_id === this.#currentId;
      if (wasCurrent) this.setCurrent(null);
      this.#onDeleted(summary.session_id, wasCurrent);
    });
    no.focus();
  }

  #startRename(li, summary) {
    const doc = this.#doc;
    const title = summary.title || '';
    const input = el(doc, 'input', { type: 'text', className: 'conv-title-input', maxlength: '200', 'aria-label': 'New title' });
    input.value = title;
    const save = el(doc, 'button', { type: 'submit', className: 'btn conv-save', text: 'Save' });
    const cancel = el(doc, 'button', { type: 'button', className: 'btn secondary conv-cancel', text: 'Cancel' });
    const form = el(doc, 'form', { className: 'conv-rename-form' }, [input, save, cancel]);
    const { box, done } = this.#inline(li, [form], li.querySelector('.conv-rename'));
    box.setAttribute('aria-label', `Rename ${summary.title || UNTITLED}`);
    cancel.addEventListener('click', () => done());
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const wanted = input.value.trim();
      if (!wanted || wanted === title) {
        done();
        return;
      }
      save.disabled = true;
      let updated;
      try {
        updated = await this.#client()?.updateSession(summary.session_id, { title: wanted });
      } catch (error) {
        save.disabled = false;
        this.say(`Could not rename it: ${error.message}`, 'error');
        return;
      }
      const renamed = updated || { ...summary, title: wanted };
      if (renamed.state && renamed.state !== this.#state) {
        // A rename brings an archived conversation back to the active ones.
        this.#drop(li, summary.session_id, `Renamed “${renamed.title}”; it is active again.`);
        return;
      }
      this.#put(renamed).querySelector('.conv-rename').focus();
    });
    input.focus();
    input.select();
  }
}
