// The test page's app (bundled by esbuild with React, react-dom and the client): a
// small chat built only from useConversation's result, the way a customer's app would
// use it. The tests drive it as a user does (type, click) and read what it shows.
// `window.chatPage` mounts it (`mount(options, {strict, tokenFromPage})`; with
// `tokenFromPage` its token provider answers `window.chatToken`), re-renders it from
// its parent with a fresh options object (`rerender()`) and unmounts it (`unmount()`).

import { StrictMode, createElement as h, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { useConversation } from '@switchboard/react';

function handoffLine({ state, operator, notice }) {
  if (state === 'waiting') return notice || 'Waiting for a person';
  if (state === 'human') return `${operator?.name || 'Someone from our team'} joined the conversation`;
  return 'With the assistant';
}

function Chat({ options, tokenFromPage }) {
  // A new options object (and token provider) on every render, as apps write them.
  const chat = useConversation(tokenFromPage ? { ...options, tokenProvider: async () => window.chatToken } : { ...options });
  const [draft, setDraft] = useState('');
  const submit = (event) => {
    event.preventDefault();
    chat.send(draft);
    setDraft('');
  };
  return h(
    'main',
    { id: 'chat', 'data-status': chat.status, 'data-streaming': String(chat.streaming), 'data-session-id': chat.sessionId ?? '' },
    h('p', { id: 'status' }, chat.status),
    h('p', { id: 'handoff', 'data-state': chat.handoff.state }, handoffLine(chat.handoff)),
    chat.error && h('p', { id: 'error', 'data-code': chat.error.code ?? '' }, chat.error.message),
    h(
      'ol',
      { id: 'log' },
      chat.messages.map((m) =>
        h(
          'li',
          { key: m.id, className: 'msg', 'data-id': m.id, 'data-role': m.role, 'data-status': m.status, 'data-message-id': m.messageId ?? '', 'data-turn-id': m.turnId ?? '' },
          h('b', { className: 'author' }, m.author ?? 'You'),
          h('span', { className: 'text' }, m.text),
        ),
      ),
    ),
    h(
      'form',
      { onSubmit: submit },
      h('input', { id: 'draft', value: draft, onChange: (event) => setDraft(event.target.value) }),
      h('button', { id: 'send', type: 'submit' }, 'Send'),
      chat.streaming && h('button', { id: 'stop', type: 'button', onClick: chat.stop }, 'Stop'),
      chat.handoff.state === 'assistant' &&
        h('button', { id: 'human', type: 'button', onClick: () => chat.requestHuman('asked from the page').catch(() => {}) }, 'Talk to a person'),
    ),
  );
}

function Host({ options, tokenFromPage }) {
  const [renders, setRenders] = useState(0);
  useEffect(() => {
    window.chatPage.rerender = () => setRenders((n) => n + 1);
  }, []);
  return h('div', { id: 'host', 'data-renders': renders }, h(Chat, { options, tokenFromPage }));
}

let root = null;
window.chatPage = {
  mount(options, { strict = false, tokenFromPage = false } = {}) {
    root = createRoot(document.getElementById('root'));
    const app = h(Host, { options, tokenFromPage });
    root.render(strict ? h(StrictMode, null, app) : app);
  },
  unmount() {
    root.unmount();
    root = null;
  },
  rerender() {},
};
