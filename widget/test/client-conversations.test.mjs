// The client's conversation methods (session.list/update/delete/export, switching and
// starting conversations) against a scripted socket: which frames go out, and which
// reply settles which promise. The browser suite runs them against the real gateway.

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { SwitchboardClient } from '../src/client.js';
import { MemoryStorage, ScriptedSocket, until } from './support/scripted.mjs';

const STORAGE_KEY = 'switchboard:v1:ws://127.0.0.1:9/ws|default';
const ALICE = { user_id: 'alice', org_id: 'default', groups: [], roles: [], anonymous: false };

afterEach(() => {
  ScriptedSocket.principal = { anonymous: true };
});

/** A signed-in client, online, whose current conversation is `s_1` (joined). */
async function aliceIn(sessionId = 's_1') {
  ScriptedSocket.all = [];
  ScriptedSocket.principal = ALICE;
  const storage = new MemoryStorage();
  storage.setItem(STORAGE_KEY, JSON.stringify({ session_id: sessionId, session_key: null }));
  const c = new SwitchboardClient({ gateway: 'http://127.0.0.1:9/', WebSocket: ScriptedSocket, storage, backoff: { initialMs: 5, maxMs: 20, factor: 2 } });
  const events = [];
  c.addEventListener('event', (e) => events.push(e.detail));
  c.start();
  const socket = await until(() => ScriptedSocket.all[0]?.frames('session.join')[0] && ScriptedSocket.all[0], 'a join');
  const join = socket.frames('session.join')[0];
  socket.receive({ re: join.id, type: 'session.joined', session_id: sessionId, last_seq: 2, recovered: true });
  await until(() => c.state === 'online', 'online');
  return { c, socket, storage, events };
}

function summary(id, extra = {}) {
  return { session_id: id, org_id: 'default', owner: 'alice', title: null, state: 'active', created_at: 1, last_activity_at: 2, last_seq: 0, preview: null, ...extra };
}

test('listSessions asks for the user’s own conversations and resolves with the page its reply carries', async () => {
  const { c, socket } = await aliceIn();
  assert.equal(c.signedIn, true);
  const first = c.listSessions({ state: 'active', limit: 2 });
  const second = c.listSessions({ cursor: 'cur_1' });
  const [a, b] = socket.frames('session.list');
  assert.deepEqual({ ...a, id: undefined }, { id: undefined, type: 'session.list', scope: 'mine', state: 'active', limit: 2 });
  assert.deepEqual({ ...b, id: undefined }, { id: undefined, type: 'session.list', scope: 'mine', cursor: 'cur_1' });
  // Answered out of order: each promise gets the reply with its own `re`.
  socket.receive({ re: b.id, type: 'session.listed', sessions: [summary('s_3')] });
  socket.receive({ re: a.id, type: 'session.listed', sessions: [summary('s_1'), summary('s_2')], next_cursor: 'cur_1' });
  assert.deepEqual((await first).sessions.map((s) => s.session_id), ['s_1', 's_2']);
  assert.equal((await first).next_cursor, 'cur_1');
  assert.deepEqual((await second).sessions.map((s) => s.session_id), ['s_3']);
  assert.equal((await second).next_cursor, undefined);

  const refused = c.listSessions();
  socket.receive({ re: socket.frames('session.list')[2].id, type: 'error', code: 'forbidden', message: 'sign in to list conversations' });
  await assert.rejects(refused, (error) => error.code === 'forbidden' && /sign in/.test(error.message));
  c.stop();
});

test('update, delete and export send their frames and resolve with their replies', async () => {
  const { c, socket } = await aliceIn();
  const renamed = c.updateSession('s_2', { title: 'Shipping' });
  const update = socket.frames('session.update')[0];
  assert.deepEqual({ ...update, id: undefined }, { id: undefined, type: 'session.update', session_id: 's_2', title: 'Shipping' });
  socket.receive({ re: update.id, type: 'session.updated', session: summary('s_2', { title: 'Shipping' }) });
  assert.equal((await renamed).title, 'Shipping');

  const exported = c.exportSession('s_2');
  const exportFrame = socket.frames('session.export')[0];
  assert.equal(exportFrame.format, 'markdown');
  socket.receive({ re: exportFrame.id, type: 'session.exported', session_id: 's_2', format: 'markdown', content: '# Shipping' });
  assert.equal((await exported).content, '# Shipping');

  // Deleting another conversation keeps the current one.
  const deleted = c.deleteSession('s_2');
  const del = socket.frames('session.delete')[0];
  socket.receive({ re: del.id, type: 'session.deleted', session_id: 's_2' });
  await deleted;
  assert.equal(c.sessionId, 's_1');
  assert.equal(socket.frames('session.leave').length, 0);

  // Deleting the current one leaves it first; the next message starts a new one.
  const gone = c.deleteSession('s_1');
  const order = socket.sent.slice(-2).map((f) => f.type);
  assert.deepEqual(order, ['session.leave', 'session.delete']);
  socket.receive({ re: socket.frames('session.delete')[1].id, type: 'session.deleted', session_id: 's_1' });
  await gone;
  assert.equal(c.sessionId, null);
  c.stop();
});

test('openSession leaves the current conversation, replays the other from the start, and remembers it', async () => {
  const { c, socket, storage, events } = await aliceIn('s_1');
  socket.receive({ type: 'message', session_id: 's_1', seq: 1, message_id: 'm_1', role: 'user', text: 'old' });
  const opened = c.openSession('s_2');
  assert.deepEqual(socket.frames('session.leave').map((f) => f.session_id), ['s_1']);
  const join = socket.frames('session.join')[1];
  assert.deepEqual({ ...join, id: undefined }, { id: undefined, type: 'session.join', session_id: 's_2', after_seq: 0 });
  assert.equal(JSON.parse(storage.getItem(STORAGE_KEY)).session_id, 's_2', 'a reload comes back to it');
  socket.receive({ type: 'message', session_id: 's_1', seq: 2, message_id: 'm_2', role: 'user', text: 'late, of the old one' });
  socket.receive({ re: join.id, type: 'session.joined', session_id: 's_2', last_seq: 2, recovered: true });
  socket.receive({ type: 'message', session_id: 's_2', seq: 1, message_id: 'm_a', role: 'user', text: 'hi' });
  socket.receive({ type: 'turn.end', session_id: 's_2', seq: 2, turn_id: 't_1', status: 'completed', text: 'hello' });
  assert.equal((await opened).session_id, 's_2');
  assert.deepEqual(events.map((e) => `${e.session_id}#${e.seq}`), ['s_1#1', 's_2#1', 's_2#2']);
  assert.equal(c.lastSeq, 2);

  // Switching again before the join is answered: the stale join is left when it lands.
  const abandoned = c.openSession('s_3');
  const staleJoin = socket.frames('session.join')[2];
  c.openSession('s_4').catch(() => {}); // settled by stop() below
  socket.receive({ re: staleJoin.id, type: 'session.joined', session_id: 's_3', last_seq: 0, recovered: true });
  await abandoned;
  assert.deepEqual(socket.frames('session.leave').map((f) => f.session_id), ['s_1', 's_2', 's_3']);
  assert.equal(c.sessionId, 's_4');
  c.stop();
});

test('newSession creates a conversation at once and makes it the current one', async () => {
  const { c, socket, storage } = await aliceIn('s_1');
  const created = c.newSession();
  assert.deepEqual(socket.sent.slice(-2).map((f) => f.type), ['session.leave', 'session.create']);
  const create = socket.frames('session.create')[0];
  socket.receive({ re: create.id, type: 'session.created', session_id: 's_new', seq: 0 });
  assert.equal((await created).session_id, 's_new');
  assert.equal(c.sessionId, 's_new');
  assert.equal(c.lastSeq, 0);
  assert.equal(JSON.parse(storage.getItem(STORAGE_KEY)).session_id, 's_new');

  // Not while a message is on its way: it belongs to the conversation it was typed in.
  c.send('in flight').catch(() => {});
  await assert.rejects(c.newSession(), (error) => error.code === 'busy');
  await assert.rejects(c.openSession('s_1'), (error) => error.code === 'busy');
  assert.equal(c.sessionId, 's_new');
  c.stop();
});

test('an anonymous client is not signed in, and requests fail at once when offline', async () => {
  ScriptedSocket.all = [];
  const c = new SwitchboardClient({ gateway: 'http://127.0.0.1:9/', WebSocket: ScriptedSocket });
  await assert.rejects(c.listSessions(), (error) => error.code === 'disconnected');
  c.start();
  await until(() => c.state === 'online', 'online');
  assert.equal(c.signedIn, false);
  c.stop();
});
