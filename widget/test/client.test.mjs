// The JavaScript client without a browser: its resume, dedupe, resend and retry logic
// against a scripted socket, so each rule is pinned down exactly. (The browser tests
// run the same code against the real gateway.)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SwitchboardClient, backoffDelay, refreshDelay, retryDelay, tokenExpiry, websocketUrl } from '../src/client.js';
import { MemoryStorage, ScriptedSocket, until } from './support/scripted.mjs';

const FAST = { initialMs: 5, maxMs: 20, factor: 2 };

function client(options = {}) {
  ScriptedSocket.all = [];
  const c = new SwitchboardClient({ gateway: 'http://127.0.0.1:9/', WebSocket: ScriptedSocket, backoff: FAST, ...options });
  const events = [];
  c.addEventListener('event', (e) => events.push(e.detail));
  return { c, events };
}

function event(seq, extra = {}) {
  return { type: 'turn.delta', session_id: 's_1', seq, ts: 0, turn_id: 't_1', text: `d${seq} `, ...extra };
}

test('backoff grows exponentially to a cap, with jitter between half and all of it', () => {
  const b = { initialMs: 500, maxMs: 15000, factor: 2 };
  assert.equal(backoffDelay(0, b, () => 0), 250);
  assert.equal(backoffDelay(0, b, () => 1), 500);
  assert.equal(backoffDelay(3, b, () => 1), 4000);
  assert.equal(backoffDelay(20, b, () => 1), 15000);
  assert.equal(backoffDelay(20, b, () => 0), 7500);
});

test("a refused request waits at least the gateway's retry_after_ms, at most ten minutes", () => {
  const b = { initialMs: 500, maxMs: 15000, factor: 2 };
  assert.equal(retryDelay(0, b, undefined, () => 1), 500);
  assert.equal(retryDelay(0, b, 1500, () => 1), 1500);
  assert.equal(retryDelay(3, b, 1500, () => 1), 4000);
  assert.equal(retryDelay(0, b, 3_600_000, () => 1), 600_000);
  assert.equal(retryDelay(0, b, -5, () => 1), 500);
  assert.equal(retryDelay(0, b, 'soon', () => 1), 500);
});

test('the token is refreshed ahead of exp by a quarter of its life, 3 to 60 seconds ahead', () => {
  assert.equal(refreshDelay(10_000, 0), 7_000);
  assert.equal(refreshDelay(3_600_000, 0), 3_540_000);
  assert.equal(refreshDelay(1_000, 0), 0);
  const payload = Buffer.from(JSON.stringify({ sub: 'u', exp: 1234 })).toString('base64url');
  assert.equal(tokenExpiry(`h.${payload}.s`), 1234);
  assert.equal(tokenExpiry('not a jwt'), null);
});

test('the gateway URL becomes its /ws URL, with the token in the query', () => {
  assert.equal(websocketUrl('https://chat.example.com'), 'wss://chat.example.com/ws');
  assert.equal(websocketUrl('http://127.0.0.1:8080/prefix/'), 'ws://127.0.0.1:8080/prefix/ws');
  assert.equal(websocketUrl('wss://x.example/ws', 'a.b.c'), 'wss://x.example/ws?token=a.b.c');
  assert.throws(() => websocketUrl('ftp://x.example'));
});

test('after a reconnect it resumes with after_seq and delivers each event once, in order', async () => {
  const storage = new MemoryStorage();
  storage.setItem('switchboard:v1:ws://127.0.0.1:9/ws|default', JSON.stringify({ session_id: 's_1', session_key: 'k_1' }));
  const { c, events } = client({ storage });
  c.start();
  let socket = await until(() => ScriptedSocket.all[0]?.frames('session.join')[0] && ScriptedSocket.all[0], 'a join');
  const join = socket.frames('session.join')[0];
  assert.deepEqual({ ...join, id: undefined }, { id: undefined, type: 'session.join', session_id: 's_1', session_key: 'k_1' });
  socket.receive({ re: join.id, type: 'session.joined', session_id: 's_1', last_seq: 3, recovered: true });
  for (const seq of [1, 2, 3, 3, 4]) socket.receive(event(seq)); // a duplicate at the seam
  socket.drop(4008);
  await until(() => c.state === 'reconnecting', 'reconnecting');

  socket = await until(() => ScriptedSocket.all[1]?.frames('session.join')[0] && ScriptedSocket.all[1], 'a second join');
  const rejoin = socket.frames('session.join')[0];
  assert.equal(rejoin.after_seq, 4);
  socket.receive({ re: rejoin.id, type: 'session.joined', session_id: 's_1', last_seq: 6, recovered: true });
  for (const seq of [3, 4, 5, 6]) socket.receive(event(seq)); // a server replaying too much
  socket.receive(event(9, { session_id: 's_other' })); // not this session
  assert.deepEqual(events.map((e) => e.seq), [1, 2, 3, 4, 5, 6]);
  assert.equal(c.state, 'online');
  c.stop();
});

test('a message not acknowledged before a disconnect is resent with the same client_message_id', async () => {
  const storage = new MemoryStorage();
  const { c } = client({ storage });
  const accepted = c.send('hello');
  c.start();
  let socket = await until(() => ScriptedSocket.all[0]?.frames('session.create')[0] && ScriptedSocket.all[0], 'a create');
  const create = socket.frames('session.create')[0];
  socket.receive({ re: create.id, type: 'session.created', session_id: 's_1', session_key: 'k_1', seq: 0 });
  const first = await until(() => socket.frames('message.send')[0], 'a send');
  assert.equal(first.text, 'hello');
  assert.equal(first.session_id, 's_1');
  // Kept in storage until acknowledged: a reload would send it too.
  assert.deepEqual(JSON.parse([...storage.map.values()][0]).outbox, [{ client_message_id: first.client_message_id, text: 'hello' }]);
  socket.drop(1006);

  socket = await until(() => ScriptedSocket.all[1]?.frames('session.join')[0] && ScriptedSocket.all[1], 'a join');
  const join = socket.frames('session.join')[0];
  assert.equal(join.session_key, 'k_1');
  socket.receive({ re: join.id, type: 'session.joined', session_id: 's_1', last_seq: 1, recovered: true });
  const again = await until(() => socket.frames('message.send')[0], 'a resend');
  assert.equal(again.client_message_id, first.client_message_id);
  assert.notEqual(again.id, first.id);
  socket.receive({ re: again.id, type: 'message.accepted', session_id: 's_1', message_id: 'm_1', seq: 1 });
  assert.deepEqual(await accepted, { message_id: 'm_1', seq: 1, client_message_id: first.client_message_id });
  assert.deepEqual(JSON.parse([...storage.map.values()][0]).outbox, []);
  c.stop();
});

test('goaway brings the client back at once, not after a backoff', async () => {
  const { c } = client({ backoff: { initialMs: 60_000, maxMs: 60_000, factor: 2 } });
  c.start();
  const socket = await until(() => ScriptedSocket.all[0]?.readyState === 1 && ScriptedSocket.all[0], 'open');
  await until(() => c.state === 'online', 'online');
  socket.receive({ type: 'goaway', reason: 'draining' });
  socket.drop(1012);
  await until(() => ScriptedSocket.all.length === 2, 'a reconnect within a second', 1000);
  c.stop();
});

test('a refused static token stops the client instead of retrying', async () => {
  const { c } = client({ token: 'bad.token.here' });
  c.start();
  const socket = await until(() => ScriptedSocket.all[0], 'a socket');
  assert.ok(socket.url.endsWith('/ws?token=bad.token.here'));
  socket.drop(4401);
  assert.equal(c.state, 'unauthorized');
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(ScriptedSocket.all.length, 1);
  c.stop();
});

test('a session the gateway no longer knows is forgotten and a new one is created for the next message', async () => {
  const storage = new MemoryStorage();
  storage.setItem('switchboard:v1:ws://127.0.0.1:9/ws|default', JSON.stringify({ session_id: 's_gone', session_key: 'k' }));
  const { c } = client({ storage });
  let reset = 0;
  c.addEventListener('reset', () => {
    reset += 1;
  });
  c.start();
  const socket = await until(() => ScriptedSocket.all[0]?.frames('session.join')[0] && ScriptedSocket.all[0], 'a join');
  const join = socket.frames('session.join')[0];
  socket.receive({ re: join.id, type: 'error', code: 'not_found', message: 'no such session' });
  assert.equal(reset, 1);
  assert.equal(c.sessionId, null);
  assert.equal(storage.map.size, 0);
  c.send('new question');
  await until(() => socket.frames('session.create')[0], 'a create');
  c.stop();
});

/** A WebSocket that fails before it opens (a proxy refusing the upgrade) until `works`. */
class BlockedSocket extends ScriptedSocket {
  static works = false;
  static attempts = 0;
  constructor(url, protocol) {
    super(url, protocol);
    BlockedSocket.attempts += 1;
    if (!BlockedSocket.works) {
      this.receive = () => {}; // no welcome: the upgrade never happens
      setTimeout(() => this.drop(1006), 0);
    } else {
      setTimeout(() => this.onopen?.({}), 0);
    }
  }
}

/** A fetch whose `/health` answers while `up`; every other request stays pending. */
function fakeFetch(state) {
  return (url) => {
    state.requests.push(String(url));
    if (String(url).endsWith('/health')) return state.up ? Promise.resolve({ ok: true }) : Promise.reject(new TypeError('network'));
    return new Promise(() => {});
  };
}

test('upgrades that fail while HTTP answers move the client to HTTP; an outage (HTTP down too) does not', async () => {
  BlockedSocket.works = false;
  BlockedSocket.attempts = 0;
  const net = { up: false, requests: [] };
  const { c } = client({ WebSocket: BlockedSocket, fetch: fakeFetch(net), websocketProbeMs: 0 });
  c.start();
  await until(() => BlockedSocket.attempts >= 4, 'four failed upgrades');
  assert.equal(c.transport, 'websocket', 'the gateway is down: nothing to fall back to');

  net.up = true;
  await until(() => c.transport === 'http', 'the HTTP transport', 3000);
  await until(() => c.state === 'online', 'online over HTTP', 3000);
  assert.equal(c.principal, null);
  c.stop();
});

test('on HTTP the client tries a WebSocket now and then, and goes back to one once it opens', async () => {
  BlockedSocket.works = false;
  BlockedSocket.attempts = 0;
  const net = { up: true, requests: [] };
  const { c } = client({ WebSocket: BlockedSocket, fetch: fakeFetch(net), websocketProbeMs: 30 });
  c.start();
  await until(() => c.transport === 'http' && c.state === 'online', 'online over HTTP', 3000);
  const attempts = BlockedSocket.attempts;
  await until(() => BlockedSocket.attempts > attempts, 'a probe', 3000);
  assert.equal(c.transport, 'http', 'a probe that fails changes nothing');

  BlockedSocket.works = true;
  await until(() => c.transport === 'websocket', 'back to WebSocket', 3000);
  await until(() => c.state === 'online', 'online over a WebSocket', 3000);
  assert.deepEqual(c.principal, ScriptedSocket.principal, 'welcomed by a real WebSocket');
  c.stop();
});

test('fallback: false never leaves the WebSocket', async () => {
  BlockedSocket.works = false;
  BlockedSocket.attempts = 0;
  const net = { up: true, requests: [] };
  const { c } = client({ WebSocket: BlockedSocket, fetch: fakeFetch(net), fallback: false });
  c.start();
  await until(() => BlockedSocket.attempts >= 4, 'four failed upgrades');
  assert.equal(c.transport, 'websocket');
  assert.deepEqual(net.requests, []);
  c.stop();
});

test('a client made for a named assistant creates its sessions with it; without one, session.create names none', async () => {
  const named = client({ assistant: 'billing' });
  named.c.send('hello');
  named.c.start();
  const socket = await until(() => ScriptedSocket.all[0]?.frames('session.create')[0] && ScriptedSocket.all[0], 'a create');
  assert.equal(socket.frames('session.create')[0].assistant, 'billing');
  named.c.stop();

  const plain = client();
  plain.c.send('hello');
  plain.c.start();
  const other = await until(() => ScriptedSocket.all[0]?.frames('session.create')[0] && ScriptedSocket.all[0], 'a create');
  assert.equal('assistant' in other.frames('session.create')[0], false);
  plain.c.stop();
});
