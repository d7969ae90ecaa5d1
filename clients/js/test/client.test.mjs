// The package's client (dist/index.js) in Node.js 20 with the `ws` package, against a
// real gateway: a streamed answer, a killed socket resumed with each event once, an
// event published over /v1 reaching a connected client, and the HTTP fallback.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { SwitchboardClient } from '../dist/index.js';
import { createPublisher } from '../publisher.js';
import { Gateway, KEY_FLAGS, PUBLISHER_KEY, TrackedWebSocket, UpgradeBreakingProxy, history, until } from './support/gateway.mjs';

const FAST = { initialMs: 50, maxMs: 200, factor: 2 };
const fx = { gateway: null, slow: null, clients: [], proxies: [] };

before(async () => {
  [fx.gateway, fx.slow] = await Promise.all([
    Gateway.start(['--demo-seed', '--offline-agent-delay', '5ms', ...KEY_FLAGS], { name: 'js-client' }),
    // Slow deltas: a turn is still streaming when the test kills the socket.
    Gateway.start(['--demo-seed', '--offline-agent-delay', '40ms', ...KEY_FLAGS], { name: 'js-client-slow' }),
  ]);
});

after(async () => {
  for (const client of fx.clients) client.stop();
  for (const proxy of fx.proxies) await proxy.close();
  fx.gateway?.kill();
  fx.slow?.kill();
});

function connect(gateway, options = {}) {
  const client = new SwitchboardClient({ gateway: gateway.url, WebSocket: TrackedWebSocket, backoff: FAST, ...options });
  fx.clients.push(client);
  const events = [];
  client.addEventListener('event', (e) => events.push(e.detail));
  client.start();
  return { client, events };
}

const turnEnd = (events, turnId) => events.find((e) => e.type === 'turn.end' && (!turnId || e.turn_id === turnId));

test('Node.js with ws: creates a session, sends, streams the answer to turn.end', async () => {
  const { client, events } = connect(fx.gateway);
  await until(() => client.state === 'online', 'online');
  const accepted = await client.send('How does reconnecting work?');
  assert.match(accepted.message_id, /^m_/);
  assert.ok(client.sessionId, 'a session was created');
  const end = await until(() => turnEnd(events), 'turn.end');
  assert.equal(end.status, 'completed');
  const deltas = events.filter((e) => e.type === 'turn.delta' && e.turn_id === end.turn_id);
  assert.ok(deltas.length > 1, `streamed in pieces: ${deltas.length}`);
  assert.equal(deltas.map((d) => d.text).join(''), end.text);
  assert.ok(events.some((e) => e.type === 'message' && e.role === 'user' && e.text === 'How does reconnecting work?'));
  client.stop();
});

test('a socket killed mid-answer: reconnect and resume deliver each event once, in order', async () => {
  TrackedWebSocket.all = [];
  const { client, events } = connect(fx.slow);
  await until(() => client.state === 'online', 'online');
  await client.send('Tell me about resuming after a dropped connection.');
  await until(() => events.filter((e) => e.type === 'turn.delta').length >= 3, 'some deltas');
  const first = TrackedWebSocket.all.at(-1);
  const seenBefore = client.lastSeq;
  first.terminate(); // no close frame: as if the network dropped
  await until(() => TrackedWebSocket.all.length >= 2 && client.state === 'online', 'a second connection');
  const end = await until(() => turnEnd(events), 'turn.end after the reconnect', 30_000);
  assert.equal(end.status, 'completed');
  const rejoin = TrackedWebSocket.all[1].sent.find((frame) => frame.type === 'session.join');
  assert.equal(rejoin.session_id, client.sessionId, 'the second connection joined the same session');
  assert.ok(rejoin.after_seq >= seenBefore, `resumed after what it had seen (${rejoin.after_seq} >= ${seenBefore})`);
  assert.ok(end.seq > rejoin.after_seq, 'the turn ended after the reconnect');

  const seqs = events.map((e) => e.seq);
  assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), 'each seq once, ascending');
  const stored = (await history(fx.slow, client.sessionId)).filter((e) => e.seq <= end.seq);
  assert.deepEqual(seqs.filter((seq) => seq <= end.seq), stored.map((e) => e.seq), 'no event missed up to turn.end');
  const deltas = events.filter((e) => e.type === 'turn.delta' && e.turn_id === end.turn_id);
  assert.equal(deltas.map((d) => d.text).join(''), end.text, 'the answer reads whole');
  client.stop();
});

test('an event published over /v1 reaches the connected client', async () => {
  const { client, events } = connect(fx.gateway);
  await until(() => client.state === 'online', 'online');
  await client.send('Hello');
  await until(() => turnEnd(events), 'turn.end');
  const publisher = createPublisher({ gateway: fx.gateway.url, key: PUBLISHER_KEY });
  const { seq } = await publisher.publish({ session: client.sessionId }, 'order.shipped', { order: 42 }, { idempotencyKey: 'order-42' });
  const received = await until(() => events.find((e) => e.type === 'event' && e.name === 'order.shipped'), 'the published event');
  assert.equal(received.seq, seq);
  assert.deepEqual(received.data, { order: 42 });
  assert.equal(received.publisher, 'backend');
  // The same idempotency key appends nothing and answers the same seq.
  assert.deepEqual(await publisher.publish({ session: client.sessionId }, 'order.shipped', { order: 42 }, { idempotencyKey: 'order-42' }), { seq });
  client.stop();
});

test('WebSocket upgrades refused: the client carries on over SSE and REST', async () => {
  const proxy = await UpgradeBreakingProxy.start(fx.gateway.url);
  fx.proxies.push(proxy);
  const { client, events } = connect(proxy, { websocketProbeMs: 0 });
  await until(() => client.transport === 'http' && client.state === 'online', 'online over HTTP', 30_000);
  await client.send('Does this work without WebSockets?');
  const end = await until(() => turnEnd(events), 'turn.end over SSE', 30_000);
  assert.equal(end.status, 'completed');
  assert.ok(proxy.upgradesRefused >= 2);
  assert.ok(proxy.streamRequests.length >= 1, 'events came over the event stream');
  client.stop();
});
