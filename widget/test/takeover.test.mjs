// Two replicas over Redis behind one address (a TCP proxy standing in for a Kubernetes
// Service), the widget connected through it to one of them. That replica is killed
// (SIGKILL) mid-answer: the widget reconnects to the other, the interrupted answer is
// marked as such, the message is answered again in full, and no typing indicator is
// left running.

import assert from 'node:assert/strict';
import { connect, createServer } from 'node:net';
import { after, test } from 'node:test';
import {
  KEY_FLAGS,
  embedPage,
  history,
  normalized,
  readable,
  recordFrames,
  screenshot,
  sel,
  storedSessionId,
} from './support/browser.mjs';
import { Gateway } from './support/processes.mjs';
import { sharedProcesses } from './support/fixture.mjs';

const fx = sharedProcesses();

const LEASE_BEAT_MS = 250;
const LEASE_LAPSE_MS = 1000;

/**
 * One TCP address in front of the replicas, forwarding each new connection to the
 * replica it currently points at (what a Service does once a dead pod is out of its
 * endpoints). A connection whose other side closes is closed too.
 */
class TcpProxy {
  static async start(targetPort) {
    const proxy = new TcpProxy();
    proxy.target = targetPort;
    proxy.sockets = new Set();
    proxy.server = createServer((client) => {
      const upstream = connect(proxy.target, '127.0.0.1');
      const pair = [client, upstream];
      for (const socket of pair) {
        proxy.sockets.add(socket);
        socket.on('error', () => {}); // a reset is what a dying replica looks like
        socket.on('close', () => {
          proxy.sockets.delete(socket);
          for (const other of pair) other.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.port = proxy.server.address().port;
    return proxy;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  switchTo(targetPort) {
    this.target = targetPort;
  }

  close() {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

let proxy;

after(async () => {
  await proxy?.close();
});

async function startReplica(name) {
  const args = [
    '--backplane', fx.redis.url,
    '--backplane-prefix', 'takeover',
    '--server-id', name,
    '--demo-seed',
    // Slow enough that the answer is still streaming when its replica is killed.
    '--offline-agent-delay', '100ms',
    '--turn-lease-beat', `${LEASE_BEAT_MS}ms`,
    '--turn-lease-lapse', `${LEASE_LAPSE_MS}ms`,
    ...KEY_FLAGS,
  ];
  const gateway = await Gateway.start(args, { name });
  fx.gateways.push(gateway);
  return gateway;
}

test('a replica killed mid-answer: the widget reconnects to the other, marks the answer interrupted, then shows the whole answer', async () => {
  const [first, second] = await Promise.all([startReplica('takeover-a'), startReplica('takeover-b')]);
  proxy = await TcpProxy.start(first.port);

  const url = fx.host.page('/takeover', embedPage(proxy.url, { attributes: { 'storage-key': 'takeover', 'chat-title': 'Shop help' } }));
  const context = await fx.browser.newContext({ viewport: { width: 800, height: 900 } });
  const page = await context.newPage();
  // What the marker said at the moment each turn ended (it changes once the message is
  // answered again, possibly before a poll would see it).
  await page.addInitScript(() => {
    window.__ends = [];
    document.addEventListener('switchboard:turn-end', (event) => {
      const bubble = event.target.shadowRoot.querySelector(`.msg[data-turn-id="${event.detail.turn_id}"]`);
      window.__ends.push({
        status: event.detail.status,
        code: event.detail.code ?? null,
        retrying: event.detail.retrying ?? null,
        state: bubble?.dataset.state ?? null,
        note: bubble?.querySelector('.turn-note')?.textContent ?? null,
        typingHidden: bubble ? bubble.querySelector('.typing').hidden : null,
      });
    });
  });
  const frames = recordFrames(page);
  await page.goto(url);
  await page.waitForFunction(() => document.querySelector('switchboard-chat')?.status === 'online', null, { timeout: 30_000 });
  assert.equal(frames.received.find((f) => f.type === 'welcome')?.server_id, 'takeover-a', 'connected to the first replica');

  await page.locator(sel.input).fill('How does reconnecting and resuming work?');
  await page.locator(sel.send).click();
  // Mid-answer: some words are on screen.
  await page.waitForFunction(() => {
    const body = document.querySelector('switchboard-chat').shadowRoot.querySelector('.msg[data-state="streaming"] .body');
    return body && body.textContent.split(' ').length >= 6;
  });
  const sessionId = await storedSessionId(page);

  // The replica dies without a word (OOM killer, node failure); the Service stops
  // sending new connections to it.
  const killedAt = Date.now();
  first.kill();
  assert.equal((await first.exited).signal, 'SIGKILL');
  proxy.switchTo(second.port);
  const partial = normalized(await page.locator(`${sel.assistant}[data-state="streaming"] .body`).first().innerText());

  // The interrupted marker, on the partial answer.
  const interrupted = page.locator(`${sel.assistant}[data-state="interrupted"]`);
  await interrupted.waitFor({ timeout: 15_000 });
  const markedAfterMs = Date.now() - killedAt;
  console.log(`interrupted marker ${markedAfterMs} ms after the kill (lease lapse ${LEASE_LAPSE_MS} ms, beat ${LEASE_BEAT_MS} ms)`);
  assert.ok(markedAfterMs <= LEASE_LAPSE_MS + LEASE_BEAT_MS + 3000, `marked ${markedAfterMs} ms after the kill`);
  await screenshot(page, 'takeover-interrupted');

  // Then the whole answer, as a fresh reply.
  const done = page.locator(`${sel.assistant}[data-state="completed"]`);
  await done.waitFor({ timeout: 30_000 });
  const answeredAfterMs = Date.now() - killedAt;
  console.log(`complete answer ${answeredAfterMs} ms after the kill`);
  await page.waitForFunction(() => document.querySelector('switchboard-chat').status === 'online');

  // Reconnected to the other replica, resuming the same session.
  const welcomes = frames.received.filter((f) => f.type === 'welcome');
  assert.equal(welcomes.at(-1).server_id, 'takeover-b', 'reconnected to the second replica');
  const joins = frames.sent.filter((f) => f.type === 'session.join');
  assert.ok(joins.length >= 1 && joins.every((f) => f.session_id === sessionId && f.after_seq > 0), JSON.stringify(joins));

  // What the history says happened: the dead turn ended replica_lost (retrying), a
  // new turn answered the same message, completed, once.
  const events = await history(second.url, sessionId);
  const users = events.filter((e) => e.type === 'message' && e.role === 'user');
  assert.equal(users.length, 1);
  const starts = events.filter((e) => e.type === 'turn.start');
  const ends = events.filter((e) => e.type === 'turn.end');
  assert.equal(starts.length, 2, 'the interrupted turn and its retry');
  assert.ok(starts.every((s) => s.reply_to === users[0].message_id));
  assert.deepEqual(
    ends.map((e) => [e.turn_id, e.status, e.code ?? null, e.retrying ?? null]),
    [
      [starts[0].turn_id, 'failed', 'replica_lost', true],
      [starts[1].turn_id, 'completed', null, null],
    ],
  );
  const answer = ends[1].text;
  assert.ok(answer.length > 0);
  assert.equal(events.filter((e) => e.type === 'message' && e.role === 'assistant').length, 1, 'answered once');

  // What the person sees: the partial answer marked interrupted, then the complete
  // answer, the offline agent's whole reply.
  assert.equal(await page.locator(sel.assistant).count(), 2);
  const bubbles = page.locator(sel.assistant);
  assert.equal(await bubbles.nth(0).getAttribute('data-state'), 'interrupted');
  assert.equal(await bubbles.nth(1).getAttribute('data-state'), 'completed');
  const interruptedText = await readable(interrupted.locator('.body'));
  assert.ok(interruptedText.length >= partial.length && partial.length > 0, `kept what streamed: ${interruptedText}`);
  assert.ok(normalized(answer).startsWith(interruptedText), 'the interrupted part is the start of the same answer');
  assert.notEqual(interruptedText, normalized(answer), 'it was interrupted before the end');
  assert.equal(await readable(done.locator('.body')), normalized(answer));
  const note = interrupted.locator('.turn-note');
  assert.equal(await note.isVisible(), true);
  assert.equal(await note.textContent(), 'Interrupted — answered again below.');

  // At the moment it ended, the marker said an answer was coming, and its typing
  // indicator was off.
  const endsSeen = await page.evaluate(() => window.__ends);
  assert.deepEqual(endsSeen, [
    { status: 'failed', code: 'replica_lost', retrying: true, state: 'interrupted', note: 'Interrupted — answering again…', typingHidden: true },
    { status: 'completed', code: null, retrying: null, state: 'completed', note: null, typingHidden: true },
  ]);

  // No typing indicator, busy reply or Stop button stays behind, now or a bit later.
  for (let i = 0; i < 6; i += 1) {
    assert.equal(await page.locator('switchboard-chat .typing').filter({ visible: true }).count(), 0, 'no typing indicator');
    assert.equal(await page.locator('switchboard-chat .msg[aria-busy]').count(), 0, 'no reply still busy');
    assert.equal(await page.locator('switchboard-chat .msg[data-state="streaming"]').count(), 0, 'no reply still streaming');
    assert.equal(await page.locator(sel.stop).isVisible(), false, 'no Stop button');
    await page.waitForTimeout(250);
  }
  assert.equal(await page.locator(sel.banner).isVisible(), false, 'online, no banner');
  await screenshot(page, 'takeover-answered');

  // A reload replays the same: the partial answer still marked, then the answer.
  await page.reload();
  await page.locator(`${sel.assistant}[data-state="completed"]`).waitFor({ timeout: 20_000 });
  assert.equal(await readable(page.locator(`${sel.assistant}[data-state="interrupted"] .body`)), interruptedText);
  assert.equal(await page.locator(`${sel.assistant}[data-state="interrupted"] .turn-note`).textContent(), 'Interrupted — answered again below.');
  assert.equal(await readable(page.locator(`${sel.assistant}[data-state="completed"] .body`)), normalized(answer));
  assert.equal(await page.locator('switchboard-chat .typing').filter({ visible: true }).count(), 0);
  await context.close();
});
