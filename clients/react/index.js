// useConversation: one Switchboard conversation as React state. It wraps the
// SwitchboardClient of @switchboard/client (which reconnects, resumes with after_seq,
// resends unacknowledged messages and falls back to HTTP by itself) and folds the
// client's events into a transcript, the streaming answer, the handoff state and the
// connection status. clients/react/README.md describes what it returns.

import { useEffect, useMemo, useRef, useSyncExternalStore } from 'react';
import { SwitchboardClient } from '@switchboard/client';

/** The client's states, as the hook's `status` names them. */
const STATUS = {
  idle: 'connecting',
  connecting: 'connecting',
  online: 'open',
  reconnecting: 'reconnecting',
  offline: 'reconnecting',
  unauthorized: 'closed',
  stopped: 'closed',
};

const WITH_ASSISTANT = Object.freeze({ state: 'assistant', operator: null, reason: null, notice: null });

const errorOf = (detail) => ({ code: detail?.code ?? null, message: String(detail?.message ?? detail ?? '') });

/** A transcript entry: the fields every one has, then its own. */
const entry = (fields) => ({ messageId: null, author: null, status: 'sent', error: null, ...fields });

/** A client and the state its events build, outside React (read with useSyncExternalStore). */
function createConversation(options, latest) {
  const tokenProvider = options.tokenProvider && (() => (latest.current.tokenProvider ?? options.tokenProvider)());
  const client = new SwitchboardClient({ ...options, tokenProvider });
  const listeners = new Set();
  let state = { messages: [], turnId: null, handoff: WITH_ASSISTANT, status: 'connecting', error: null, sessionId: null };

  const set = (change) => {
    state = { ...state, ...change };
    for (const listener of listeners) listener();
  };
  const setMessages = (messages) => set({ messages });
  const find = (test) => state.messages.findIndex(test);
  const replace = (index, change) => setMessages(state.messages.map((m, i) => (i === index ? { ...m, ...change } : m)));
  const append = (message) => setMessages([...state.messages, message]);

  /** The assistant's entry for a turn (created by whichever turn event comes first). */
  const turn = (ev, change) => {
    const index = find((m) => m.turnId === ev.turn_id);
    if (index >= 0) return replace(index, typeof change === 'function' ? change(state.messages[index]) : change);
    const fresh = entry({ id: ev.turn_id, role: 'assistant', author: ev.assistant || 'assistant', text: '', status: 'streaming', turnId: ev.turn_id, sources: [] });
    append({ ...fresh, ...(typeof change === 'function' ? change(fresh) : change) });
  };

  const onMessage = (ev) => {
    const known = find((m) => m.messageId === ev.message_id);
    if (known >= 0) return replace(known, { role: ev.role, author: ev.author ?? null });
    if (ev.role === 'user') {
      // Our own message, its event ahead of its `message.accepted` (the gateway sends either first).
      const mine = find((m) => m.status === 'sending' && m.text === ev.text);
      if (mine >= 0) return replace(mine, { messageId: ev.message_id, author: ev.author ?? null, status: 'sent' });
    }
    if (ev.role === 'assistant') {
      // The `message` that follows a completed turn: the turn's entry already shows it.
      const index = state.messages.findLastIndex((m) => m.turnId && m.status === 'completed' && !m.messageId && m.text === ev.text);
      if (index >= 0) return replace(index, { messageId: ev.message_id });
    }
    const status = ev.role === 'assistant' ? 'completed' : 'sent';
    append(entry({ id: ev.message_id, messageId: ev.message_id, role: ev.role, author: ev.author ?? null, text: ev.text, status }));
  };

  const onEvent = ({ detail: ev }) => {
    if (!ev.session_id) return; // the user's and org's streams: read them from `client`
    if (ev.type === 'message') onMessage(ev);
    else if (ev.type === 'turn.start') {
      turn(ev, { status: 'streaming', author: ev.assistant || 'assistant' });
      set({ turnId: ev.turn_id });
    } else if (ev.type === 'turn.delta') turn(ev, (m) => ({ text: m.text + ev.text }));
    else if (ev.type === 'turn.end') {
      const error = ev.status === 'failed' ? { code: ev.code ?? null, message: ev.error ?? 'the answer failed' } : null;
      turn(ev, { text: ev.text, status: ev.status, sources: ev.sources ?? [], error });
      if (state.turnId === ev.turn_id) set({ turnId: null });
    } else if (ev.type === 'handoff') {
      set({ handoff: { state: ev.state, operator: ev.operator ?? null, reason: ev.reason ?? null, notice: ev.notice ?? null } });
    }
  };

  const onOutbox = ({ detail }) => {
    const id = detail.client_message_id;
    const index = find((m) => m.clientMessageId === id);
    if (detail.state === 'queued') {
      const author = client.principal?.user_id ?? null;
      if (index < 0) append(entry({ id, clientMessageId: id, role: 'user', author, text: detail.text, status: 'sending' }));
    } else if (detail.state === 'accepted') {
      // Its `message` event may have come first: as this entry, or (another entry took the text) one of its own.
      const echoed = find((m) => m.messageId === detail.message_id);
      if (index >= 0 && echoed >= 0 && echoed !== index) setMessages(state.messages.filter((_, i) => i !== index));
      else if (index >= 0) replace(index, { messageId: detail.message_id, status: 'sent' });
      set({ error: null });
    } else if (detail.state === 'failed') {
      if (index >= 0) replace(index, { status: 'failed', error: errorOf(detail.error) });
      set({ error: errorOf(detail.error) });
    }
  };

  client.addEventListener('event', onEvent);
  client.addEventListener('outbox', onOutbox);
  client.addEventListener('status', ({ detail }) => {
    const status = detail.state === 'online' && client.transport === 'http' ? 'fallback' : STATUS[detail.state] || 'connecting';
    const refused = detail.state === 'unauthorized' && state.error?.code !== 'unauthorized'; // else the error frame said why
    set(refused ? { status, error: { code: 'unauthorized', message: detail.reason || 'the gateway refused the token' } } : { status });
  });
  client.addEventListener('session', ({ detail }) => set({ sessionId: detail.session_id }));
  client.addEventListener('error', ({ detail }) => set({ error: errorOf(detail) }));
  client.addEventListener('reset', () => {
    // The remembered session is gone; messages still being sent go to the next one.
    set({ messages: state.messages.filter((m) => m.status === 'sending'), turnId: null, handoff: WITH_ASSISTANT, sessionId: null });
  });

  /** A promise the caller may ignore without an unhandled rejection. */
  const quiet = (promise) => {
    promise.catch(() => {});
    return promise;
  };

  return {
    client,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    snapshot: () => state,
    send: (text) => quiet(client.send(text)),
    stop: () => Boolean(state.turnId && client.cancelTurn(state.turnId)),
    requestHuman: (reason) =>
      quiet(
        client.requestHandoff(reason).catch((error) => {
          set({ error: errorOf(error) });
          throw error;
        }),
      ),
  };
}

/**
 * A live conversation with a Switchboard gateway. `options` are SwitchboardClient's;
 * the client is made once per `gateway`, `storageKey` and `assistant` (other options
 * are read when it is made, `tokenProvider` from the latest render on each call),
 * connected on mount and closed on unmount.
 */
export function useConversation(options) {
  const latest = useRef(options);
  latest.current = options;
  const key = JSON.stringify([options.gateway, options.storageKey ?? null, options.assistant ?? null]);
  const ref = useRef(null);
  if (ref.current === null || ref.current.key !== key) {
    ref.current = { key, conversation: createConversation(options, latest) };
  }
  const { conversation } = ref.current;
  const state = useSyncExternalStore(conversation.subscribe, conversation.snapshot, conversation.snapshot);

  useEffect(() => {
    conversation.client.start();
    return () => conversation.client.stop();
  }, [conversation]);

  return useMemo(
    () => ({
      messages: state.messages,
      streaming: state.turnId !== null,
      turnId: state.turnId,
      handoff: state.handoff,
      status: state.status,
      error: state.error,
      sessionId: state.sessionId,
      send: conversation.send,
      stop: conversation.stop,
      requestHuman: conversation.requestHuman,
      client: conversation.client,
    }),
    [state, conversation],
  );
}
