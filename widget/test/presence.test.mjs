// Presence and typing in the widget (docs/protocol.md §3.15), across two replicas over
// Redis: a signed-in customer chats in the widget on one replica, an operator (Dana, a
// plain WebSocket in another page) joins the conversation on the other. The widget
// shows "Dana joined", "Dana is typing…" (cleared by her stop, and by itself 6 s after
// her last start), "Dana left"; the customer's typing reaches Dana, throttled.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  embedPage,
  recordFrames,
  screenshot,
  sel,
  signJwt,
  storedSessionId,
} from './support/browser.mjs';
import { Gateway } from './support/processes.mjs';
import { sharedProcesses } from './support/fixture.mjs';

const fx = sharedProcesses();

const SECRET = 'widget-presence-secret-0123456789abcdef';

async function replica(name) {
  const gateway = await Gateway.start(
    [
      '--backplane', fx.redis.url,
      '--backplane-prefix', 'presence',
      '--server-id', name,
      '--demo-seed',
      '--offline-agent-delay', '5ms',
      '--jwt-hs256-secret', SECRET,
      '--turn-lease-beat', '250ms',
      '--turn-lease-lapse', '1s',
    ],
    { name },
  );
  fx.gateways.push(gateway);
  return gateway;
}

function token(claims) {
  const now = Math.floor(Date.now() / 1000);
  return signJwt(SECRET, { org_id: 'default', groups: [], roles: [], exp: now + 3600, iat: now, ...claims });
}

/**
 * An operator's socket on `gateway`, living in a page of its own: `send(frame)`, and
 * `frames()` for everything it received so far.
 */
async function operatorSocket(context, gateway, jwt) {
  const page = await context.newPage();
  await page.goto(fx.host.page('/operator', '<!doctype html><title>console</title>'));
  await page.evaluate(
    ({ wsUrl }) =>
      new Promise((resolve, reject) => {
        window.received = [];
        const ws = new WebSocket(wsUrl, 'switchboard.v1');
        window.operatorSocket = ws;
        ws.onmessage = (message) => window.received.push(JSON.parse(message.data));
        ws.onopen = resolve;
        ws.onerror = () => reject(new Error('the operator socket failed'));
      }),
    { wsUrl: `${gateway.url.replace('http:', 'ws:')}/ws?token=${jwt}` },
  );
  return {
    send: (frame) => page.evaluate((f) => window.operatorSocket.send(JSON.stringify(f)), frame),
    frames: () => page.evaluate(() => window.received),
    waitFor: (predicate, what) =>
      page
        .waitForFunction((source) => window.received.some(new Function('f', `return (${source})(f)`)), predicate.toString(), { timeout: 10_000 })
        .catch((error) => {
          throw new Error(`the operator never received ${what}: ${error.message}`);
        }),
    close: () => page.evaluate(() => window.operatorSocket.close()),
  };
}

test('staff arriving, typing and leaving show in the widget; the customer typing reaches them, throttled', async () => {
  const [a, b] = await Promise.all([replica('presence-a'), replica('presence-b')]);
  const customer = token({ sub: 'cust-1', name: 'Sam' });
  const url = fx.host.page('/presence', embedPage(a.url, { attributes: { 'storage-key': 'presence', 'chat-title': 'Shop help', token: customer } }));
  const context = await fx.browser.newContext({ viewport: { width: 760, height: 820 } });
  const page = await context.newPage();
  const frames = recordFrames(page);
  await page.goto(url);

  await page.fill(sel.input, 'Where is my order? It was due on Monday.');
  await page.press(sel.input, 'Enter');
  await page.locator(sel.assistant).first().waitFor();
  const sessionId = await storedSessionId(page);
  assert.ok(sessionId, 'the widget keeps its session id');
  const presence = frames.received.find((f) => f.type === 'presence');
  assert.deepEqual(presence?.members, [{ user_id: 'cust-1', name: 'Sam', role: 'owner' }], JSON.stringify(presence));

  // Dana joins on the other replica.
  const dana = await operatorSocket(context, b, token({ sub: 'op-dana', name: 'Dana', roles: ['operator'] }));
  await dana.send({ id: 'j1', type: 'session.join', session_id: sessionId });
  await dana.waitFor((f) => f.type === 'presence', 'her presence snapshot');
  const joinedLine = page.locator('switchboard-chat .notice[data-kind="presence"][data-change="joined"]');
  await joinedLine.waitFor();
  assert.equal(await joinedLine.textContent(), 'Dana joined');

  // Dana types: the widget says so.
  const typingLine = page.locator('switchboard-chat .typing-line');
  await dana.send({ type: 'typing', session_id: sessionId, typing: true });
  await typingLine.waitFor({ state: 'visible' });
  assert.equal(await typingLine.textContent(), 'Dana is typing…');

  // The customer types a few words: Dana hears it once or twice, not per keystroke.
  await page.locator(sel.input).pressSequentially('Thanks, I will wait', { delay: 40 });
  await dana.waitFor((f) => f.type === 'typing' && f.typing === true, 'the customer typing');
  const sentTyping = frames.sent.filter((f) => f.type === 'typing');
  assert.ok(sentTyping.length >= 1 && sentTyping.length <= 2, `typing frames sent: ${JSON.stringify(sentTyping)}`);
  const heard = (await dana.frames()).find((f) => f.type === 'typing');
  assert.deepEqual(heard.member, { user_id: 'cust-1', name: 'Sam', role: 'owner' });
  assert.equal(heard.seq, undefined, 'typing is not a session event');

  await screenshot(page, 'widget-presence');

  // Dana stops: cleared at once.
  await dana.send({ type: 'typing', session_id: sessionId, typing: false });
  await typingLine.waitFor({ state: 'hidden' });

  // Dana starts again and goes quiet: cleared by itself, 6 s after her start.
  await page.waitForTimeout(2100); // past the gateway's one-start-per-2 s, so it is forwarded
  const started = Date.now();
  await dana.send({ type: 'typing', session_id: sessionId, typing: true });
  await typingLine.waitFor({ state: 'visible' });
  await typingLine.waitFor({ state: 'hidden', timeout: 10_000 });
  const shownFor = Date.now() - started;
  assert.ok(shownFor >= 5_000 && shownFor <= 8_000, `shown for ${shownFor} ms`);

  // The customer sends: Dana hears the stop.
  await page.press(sel.input, 'Enter');
  await dana.waitFor((f) => f.type === 'typing' && f.typing === false, 'the customer stop typing');

  // Dana leaves.
  await dana.close();
  const leftLine = page.locator('switchboard-chat .notice[data-kind="presence"][data-change="left"]');
  await leftLine.waitFor();
  assert.equal(await leftLine.textContent(), 'Dana left');
  assert.equal(await typingLine.isVisible(), false);
  await context.close();
});
