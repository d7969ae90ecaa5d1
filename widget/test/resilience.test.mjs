// The widget keeps the conversation through failures: the gateway stopped and
// restarted mid-answer (over Redis, so history survives), an acknowledgement lost on
// the wire, and the browser going offline. Each time the person sees that it is
// reconnecting, then every message and the whole answer exactly once.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  KEY_FLAGS,
  embedPage,
  history,
  normalized,
  readable,
  recordFrames,
  recordStatuses,
  screenshot,
  sel,
  storedSessionId,
} from './support/browser.mjs';
import { Gateway } from './support/processes.mjs';
import { sharedProcesses } from './support/fixture.mjs';

const fx = sharedProcesses();

async function startGateway(args, name) {
  const gateway = await Gateway.start(args, { name });
  fx.gateways.push(gateway);
  return gateway;
}

function status(page) {
  return page.evaluate(() => document.querySelector('switchboard-chat').status);
}

async function online(page) {
  await page.waitForFunction(() => document.querySelector('switchboard-chat')?.status === 'online', null, { timeout: 30_000 });
}

/** Bubbles of the transcript as role + text. */
function transcript(page) {
  return page.locator('switchboard-chat .msg:not(.greeting)').evaluateAll((bubbles) =>
    bubbles.map((b) => `${b.dataset.role}: ${(b.querySelector('.body, .text') || b).textContent.trim()}`),
  );
}

test('the gateway killed and restarted mid-answer: reconnecting, then the whole answer exactly once', async () => {
  const args = ['--backplane', fx.redis.url, '--backplane-prefix', 'restart', '--demo-seed', '--offline-agent-delay', '120ms', ...KEY_FLAGS];
  const gateway = await startGateway(args, 'restart');
  const url = fx.host.page('/restart', embedPage(gateway.url, { attributes: { 'storage-key': 'restart', 'chat-title': 'Shop help' } }));
  const context = await fx.browser.newContext({ viewport: { width: 800, height: 820 } });
  const page = await context.newPage();
  await recordStatuses(page);
  const frames = recordFrames(page);
  await page.goto(url);
  await online(page);

  await page.locator(sel.input).fill('How does reconnecting and resuming work?');
  await page.locator(sel.send).click();
  // Mid-answer: a few deltas are on screen.
  await page.waitForFunction(() => {
    const body = document.querySelector('switchboard-chat').shadowRoot.querySelector('.msg[data-state="streaming"] .body');
    return body && body.textContent.split(' ').length >= 6;
  });
  const sessionId = await storedSessionId(page);

  // SIGTERM: the gateway says goaway, closes with 1012, lets the turn finish into
  // history (Redis), then exits 0.
  const exit = await gateway.terminate();
  assert.deepEqual(exit, { code: 0, signal: null }, 'the gateway drained and exited cleanly');
  assert.ok(frames.received.some((f) => f.type === 'goaway'), 'the widget was told goaway');

  // With no gateway at all, the widget says so.
  await page.locator(sel.banner).waitFor({ state: 'visible' });
  await page.waitForFunction(() => document.querySelector('switchboard-chat').status === 'reconnecting');
  assert.match(await page.locator(sel.banner).textContent(), /Reconnecting/);
  await screenshot(page, 'restart-reconnecting');

  // The same port, the same Redis: a new gateway process.
  const joinsBefore = frames.sent.filter((f) => f.type === 'session.join').length;
  await gateway.start(gateway.port);
  await online(page);
  const done = page.locator(`${sel.assistant}[data-state="completed"]`);
  await done.waitFor({ timeout: 30_000 });
  assert.equal(await page.locator(sel.banner).isVisible(), false, 'the banner is gone once back online');

  // It resumed from where it was, not from the start.
  const resumed = frames.sent.filter((f) => f.type === 'session.join').slice(joinsBefore);
  assert.ok(resumed.length >= 1, 'joined again after the restart');
  assert.ok(resumed.every((f) => f.session_id === sessionId && f.after_seq > 0), JSON.stringify(resumed));

  // The whole answer, exactly once, equal to the gateway's history.
  const events = await history(gateway.url, sessionId);
  const ends = events.filter((e) => e.type === 'turn.end');
  assert.equal(ends.length, 1);
  assert.equal(ends[0].status, 'completed');
  assert.equal(await page.locator(sel.assistant).count(), 1, 'one answer bubble');
  assert.equal(await readable(done.locator('.body')), normalized(ends[0].text));
  assert.equal(await page.locator(sel.user).count(), 1);
  const statuses = await page.evaluate(() => window.__statuses);
  const firstOnline = statuses.indexOf('online');
  assert.ok(statuses.indexOf('reconnecting', firstOnline) > firstOnline, statuses.join(' → '));
  assert.equal(statuses.at(-1), 'online');

  // A reload (now on the new process) shows the same conversation.
  const shown = await transcript(page);
  await page.reload();
  await online(page);
  await page.locator(`${sel.assistant}[data-state="completed"], ${sel.assistant}`).first().waitFor();
  await page.waitForFunction((n) => document.querySelector('switchboard-chat').shadowRoot.querySelectorAll('.msg:not(.greeting)').length >= n, shown.length);
  assert.deepEqual(await transcript(page), shown);
  await screenshot(page, 'restart-resumed');
  await context.close();
});

test('a message whose acknowledgement was lost is sent again with the same client_message_id, and appended once', async () => {
  const gateway = await startGateway(['--demo-seed', '--offline-agent-delay', '20ms', ...KEY_FLAGS], 'lost-ack');
  const url = fx.host.page('/lost-ack', embedPage(gateway.url, { attributes: { 'storage-key': 'lost-ack' } }));
  const context = await fx.browser.newContext();
  const page = await context.newPage();
  const sent = [];
  let dropped = 0;
  // A flaky network between the page and the gateway: the first message.accepted is
  // lost and the connection breaks right after.
  await page.routeWebSocket(/\/ws/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((message) => {
      sent.push(JSON.parse(message));
      server.send(message);
    });
    server.onMessage((message) => {
      const frame = JSON.parse(message);
      if (frame.type === 'message.accepted' && dropped === 0) {
        dropped += 1;
        ws.close({ code: 4000, reason: 'network hiccup' });
        server.close();
        return;
      }
      ws.send(message);
    });
  });
  await page.goto(url);
  await online(page);
  await page.locator(sel.input).fill('What happens to a slow consumer?');
  await page.locator(sel.send).click();
  await page.locator(`${sel.assistant}[data-state="completed"]`).waitFor({ timeout: 20_000 });
  await page.waitForFunction(() => document.querySelector('switchboard-chat').shadowRoot.querySelectorAll('.msg[data-role="user"][data-state="sent"]').length === 1);

  assert.equal(dropped, 1);
  const sends = sent.filter((f) => f.type === 'message.send');
  assert.equal(sends.length, 2, 'sent, then sent again after reconnecting');
  assert.equal(sends[0].client_message_id, sends[1].client_message_id);
  assert.ok(sends[0].client_message_id.startsWith('cm_'));

  const sessionId = await storedSessionId(page);
  const events = await history(gateway.url, sessionId);
  assert.equal(events.filter((e) => e.type === 'message' && e.role === 'user').length, 1, 'appended once');
  assert.equal(events.filter((e) => e.type === 'turn.start').length, 1, 'answered once');
  assert.deepEqual(
    (await transcript(page)).map((line) => line.split(':')[0]),
    ['user', 'assistant'],
  );
  await context.close();
});

test('offline: the widget says so, keeps what is typed, and sends it once back online', async () => {
  const gateway = await startGateway(['--demo-seed', '--offline-agent-delay', '20ms', ...KEY_FLAGS], 'offline');
  const url = fx.host.page('/offline', embedPage(gateway.url, { attributes: { 'storage-key': 'offline' } }));
  const context = await fx.browser.newContext({ viewport: { width: 800, height: 700 } });
  const page = await context.newPage();
  await page.goto(url);
  await online(page);

  await context.setOffline(true);
  await page.waitForFunction(() => document.querySelector('switchboard-chat').status === 'offline');
  assert.match(await page.locator(sel.banner).textContent(), /offline/i);
  await page.locator(sel.input).fill('What is Switchboard?');
  await page.locator(sel.send).click();
  const pending = page.locator(`${sel.user}[data-state="pending"]`);
  await pending.waitFor();
  assert.match(await pending.textContent(), /Sending…/);
  await screenshot(page, 'offline-pending');

  await context.setOffline(false);
  await online(page);
  await page.locator(`${sel.assistant}[data-state="completed"]`).waitFor({ timeout: 20_000 });
  assert.equal(await page.locator(sel.user).count(), 1);
  assert.equal(await status(page), 'online');
  const events = await history(gateway.url, await storedSessionId(page));
  assert.equal(events.filter((e) => e.type === 'message' && e.role === 'user').length, 1);
  await context.close();
});
