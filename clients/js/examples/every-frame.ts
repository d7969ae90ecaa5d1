// Every frame of the protocol, typed: built (client frames) and handled (server frames
// and events) against the types generated from docs/schemas/. `npm run typecheck`
// (tsc --noEmit) checks this file; a frame type added to the schemas and not handled
// here fails the check (the maps below are keyed by every `type`, and the switches end
// in `never`).

import { SwitchboardClient } from '@switchboard/client';
import type {
  ClientFrame,
  EventFrame,
  ServerFrame,
  StoredEvent,
  SessionCreateFrame,
  MessageSendFrame,
  TurnDeltaEvent,
  ErrorCode,
} from '@switchboard/client';
import { createPublisher, SwitchboardApiError } from '@switchboard/client/publisher';

type ByType<U extends { type: string }> = { [K in U['type']]: Extract<U, { type: K }> };

const session_id = 's_0123';

/** One of each client frame: a missing or misspelt `type` is a type error. */
export const everyClientFrame: ByType<ClientFrame> = {
  ping: { type: 'ping', id: 'f1' },
  'session.create': { type: 'session.create', metadata: { plan: 'pro' }, assistant: 'support' },
  'session.join': { type: 'session.join', session_id, session_key: 'k_1', after_seq: 41 },
  'session.leave': { type: 'session.leave', session_id },
  'message.send': { type: 'message.send', session_id, text: 'Hello', client_message_id: 'cm_1' },
  'turn.cancel': { type: 'turn.cancel', session_id, turn_id: 't_1' },
  'tool.decide': { type: 'tool.decide', session_id, call_id: 'c_1', approved: true },
  'auth.refresh': { type: 'auth.refresh', token: 'a.b.c' },
  'session.list': { type: 'session.list', scope: 'mine', state: 'active', limit: 20 },
  'session.update': { type: 'session.update', session_id, title: 'Refunds', state: 'archived' },
  'session.delete': { type: 'session.delete', session_id },
  'session.export': { type: 'session.export', session_id, format: 'markdown' },
  'user.erase': { type: 'user.erase', user_id: 'u1' },
  'handoff.request': { type: 'handoff.request', session_id, reason: 'billing' },
  'handoff.claim': { type: 'handoff.claim', session_id },
  'handoff.release': { type: 'handoff.release', session_id },
  'inbox.list': { type: 'inbox.list', limit: 50 },
  typing: { type: 'typing', session_id, typing: true },
};

// @ts-expect-error: `message.send` needs its `text`.
export const missingText: MessageSendFrame = { type: 'message.send', session_id };
export const create: SessionCreateFrame = { type: 'session.create' };
export const outgoing: ClientFrame[] = Object.values(everyClientFrame);

function assertNever(value: never): never {
  throw new Error(`unhandled frame ${JSON.stringify(value)}`);
}

/** Handle every server frame; returns a line for a log. */
export function describeServerFrame(frame: ServerFrame): string {
  switch (frame.type) {
    case 'welcome':
      return `welcome ${frame.connection_id} as ${frame.principal.user_id ?? 'anonymous'} (protocol ${frame.protocol}, ${frame.limits.max_text_chars} chars)`;
    case 'pong':
      return 'pong';
    case 'session.created':
      return `created ${frame.session_id} at ${frame.seq} key ${frame.session_key ?? '-'}`;
    case 'session.joined':
      return `joined ${frame.session_id} (last ${frame.last_seq}, recovered ${frame.recovered})`;
    case 'session.left':
      return `left ${frame.session_id}`;
    case 'message.accepted':
      return `accepted ${frame.message_id} at ${frame.seq} (re ${frame.re ?? '-'})`;
    case 'tool.decided':
      return `tool ${frame.call_id} ${frame.approved ? 'approved' : 'refused'}`;
    case 'auth.refreshed':
      return `token good until ${frame.expires_at}`;
    case 'session.listed':
      return `${frame.sessions.length} sessions, next ${frame.next_cursor ?? '-'}: ${frame.sessions.map((s) => s.title ?? s.session_id).join(', ')}`;
    case 'session.updated':
      return `updated ${frame.session.session_id}: ${frame.session.state}`;
    case 'handoff.updated':
      return `handoff of ${frame.session_id}: ${frame.handoff.state} ${frame.handoff.operator?.name ?? ''}`;
    case 'inbox.listed':
      return `inbox: ${frame.sessions.map((entry) => `${entry.session.session_id} ${entry.handoff.state}`).join(', ')}`;
    case 'session.deleted':
      return `deleted ${frame.session_id}`;
    case 'session.exported':
      return `export (${frame.format}) ${frame.content.length} chars`;
    case 'user.erased':
      return `erased ${frame.user_id}: ${frame.sessions.length} sessions, ${frame.records} records`;
    case 'presence':
      return `${frame.members.map((m) => `${m.name ?? m.user_id ?? '?'} (${m.role})`).join(', ')} + ${frame.others}`;
    case 'presence.changed':
      return `+${frame.joined.length} -${frame.left.length}`;
    case 'typing':
      return `${frame.member.name ?? 'someone'} ${frame.typing ? 'is typing' : 'stopped'}`;
    case 'error': {
      const code: ErrorCode = frame.code;
      return `error ${code}: ${frame.message}${frame.retry_after_ms ? ` (retry in ${frame.retry_after_ms} ms)` : ''}`;
    }
    case 'goaway':
      return `goaway: ${frame.reason}`;
    default:
      return assertNever(frame);
  }
}

/** Handle every event frame (session, user and org streams). */
export function describeEvent(event: EventFrame): string {
  const where = 'stream' in event && event.stream ? event.stream : event.session_id;
  const at = `${where}#${event.seq}@${event.ts}`;
  switch (event.type) {
    case 'message':
      return `${at} ${event.role}${event.author ? ` ${event.author}` : ''}: ${event.text}`;
    case 'turn.start':
      return `${at} turn ${event.turn_id} replying to ${event.reply_to}`;
    case 'turn.delta':
      return `${at} +${event.text}`;
    case 'tool.request':
      return `${at} ${event.tool}(${JSON.stringify(event.arguments)})${event.requires_approval ? ' awaits approval' : ''}`;
    case 'tool.result':
      return `${at} ${event.call_id} ${event.ok ? 'ok' : 'failed'} ${JSON.stringify(event.output ?? null)}`;
    case 'turn.end':
      return `${at} ${event.status} ${event.code ?? ''} ${event.usage?.total_tokens ?? 0} tokens, ${(event.sources ?? []).map((s) => s.title).join('; ')}`;
    case 'event':
      return `${at} ${event.name} from ${event.publisher ?? '?'}: ${JSON.stringify(event.data)}`;
    case 'handoff':
      return `${at} handoff ${event.state} by ${event.by}${event.notice ? `: ${event.notice}` : ''}`;
    case 'inbox.changed':
      return `${at} inbox ${event.session.session_id} ${event.handoff.state}`;
    default:
      return assertNever(event);
  }
}

/** Stored events (docs/protocol.md §8.1) have the same variants. */
export function storedType(event: StoredEvent): EventFrame['type'] {
  return event.type;
}

/** Anything that arrives on a socket. */
export function onText(text: string): string {
  const frame = JSON.parse(text) as ServerFrame | EventFrame;
  return 'seq' in frame && typeof frame.seq === 'number' && frame.type !== 'session.created' && frame.type !== 'message.accepted'
    ? describeEvent(frame as EventFrame)
    : describeServerFrame(frame as ServerFrame);
}

// The client's API, typed.
export async function run(): Promise<void> {
  const client = new SwitchboardClient({
    gateway: 'https://chat.example.com',
    tokenProvider: async () => 'a.b.c',
    storageKey: 'support',
    backoff: { initialMs: 250 },
    metadata: { page: '/pricing' },
  });
  let answer = '';
  client.addEventListener('event', (e) => {
    const event = e.detail;
    if (event.type === 'turn.delta') {
      const delta: TurnDeltaEvent = event;
      answer += delta.text;
    }
    if (event.type === 'turn.end' && event.status === 'completed') console.log(answer);
  });
  client.addEventListener('status', (e) => console.log(e.detail.state, e.detail.retryInMs));
  client.addEventListener('welcome', (e) => console.log(describeServerFrame(e.detail)));
  client.addEventListener('error', (e) => console.log(e.detail.code, e.detail.message));
  client.addEventListener('presence', (e) => console.log(describeServerFrame(e.detail)));
  client.start();
  const { message_id, seq } = await client.send('How do refunds work?');
  console.log(message_id, seq, client.sessionId, client.lastSeq, client.transport);
  const handoff = await client.requestHandoff('a person, please');
  console.log(handoff.state);
  const page = await client.listSessions({ state: 'active', limit: 10 });
  console.log(page.sessions.length);
  client.stop();

  const backend = createPublisher({ gateway: 'https://chat.example.com', key: 'pub_secret_0123456789abcdef' });
  try {
    const { seq: published } = await backend.publish({ user: 'u1' }, 'order.shipped', { order: 42 }, { orgId: 'acme' });
    const reply = await backend.chat('Summarise my orders', { timeoutMs: 5000 });
    console.log(published, reply.status, reply.text);
  } catch (error) {
    if (error instanceof SwitchboardApiError) console.log(error.status, error.code);
  }
}
