// The /v1 helpers (publisher.js) against a real gateway.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { SwitchboardApiError, chat, createPublisher, createSession, publish } from '../publisher.js';
import { Gateway, KEY_FLAGS, PUBLISHER_KEY } from './support/gateway.mjs';

let gateway;
before(async () => {
  gateway = await Gateway.start(['--demo-seed', '--offline-agent-delay', '2ms', ...KEY_FLAGS], { name: 'js-publisher' });
});
after(() => gateway?.kill());

test('chat() sends a message and returns the completed answer', async () => {
  const reply = await chat({ gateway: gateway.url }, 'How do refunds work?', { clientMessageId: 'q-1' });
  assert.equal(reply.status, 'completed');
  assert.ok(reply.text && reply.text.length > 0, 'the answer has text');
  assert.match(reply.session_id, /^s_/);
  assert.ok(reply.session_key, 'an anonymous session comes with its key');
  // Go on in the same session with its key.
  const again = await chat({ gateway: gateway.url, sessionKey: reply.session_key }, 'And for sale items?', { sessionId: reply.session_id });
  assert.equal(again.status, 'completed');
  assert.equal(again.session_id, reply.session_id);
  assert.ok(again.seq > reply.seq);
});

test('chat() follows the poll route when the answer takes longer than timeoutMs', async () => {
  const reply = await chat({ gateway: gateway.url }, 'Tell me a long story about reconnecting.', { timeoutMs: 1, pollMs: 50 });
  assert.equal(reply.status, 'completed');
  assert.ok(reply.text.length > 0);
});

test('createSession() opens a session that publish() can target', async () => {
  const session = await createSession({ gateway: gateway.url }, { title: 'Refunds' });
  assert.match(session.session_id, /^s_/);
  assert.equal(typeof session.seq, 'number');
  const sb = createPublisher({ gateway: gateway.url, key: PUBLISHER_KEY });
  const { seq } = await sb.publish({ session: session.session_id }, 'ticket.opened', { id: 7 }, { durable: true });
  assert.ok(seq > session.seq);
});

test('a refusal is a SwitchboardApiError with the status and code', async () => {
  await assert.rejects(
    publish({ gateway: gateway.url, key: 'not-a-key-0123456789' }, { org: 'acme' }, 'x', {}),
    (error) => error instanceof SwitchboardApiError && error.status === 401 && error.code === 'unauthorized',
  );
  await assert.rejects(
    publish({ gateway: gateway.url, key: PUBLISHER_KEY }, { session: 's_nope' }, '', {}),
    (error) => error instanceof SwitchboardApiError && error.status === 400,
  );
});
