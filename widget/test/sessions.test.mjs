// One conversation across tabs and reloads: the session id and key are kept per
// configuration (gateway URL + storage-key) in localStorage.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HostPages, KEY_FLAGS, embedPage, launchBrowser, recordFrames, screenshot, sel, storedSessionId } from './support/browser.mjs';
import { Gateway } from './support/processes.mjs';

let gateway;
let browser;
let host;

before(async () => {
  gateway = await Gateway.start(['--demo-seed', '--offline-agent-delay', '20ms', ...KEY_FLAGS], { name: 'sessions' });
  browser = await launchBrowser();
  host = await HostPages.start();
});

after(async () => {
  await browser?.close();
  await host?.close();
  gateway?.kill();
});

async function online(page) {
  await page.waitForFunction(() => document.querySelector('switchboard-chat')?.status === 'online');
}

/** What a person reads in the transcript: role and text of each bubble, in order. */
function transcript(page) {
  return page.locator('switchboard-chat .msg:not(.greeting)').evaluateAll((bubbles) =>
    bubbles.map((b) => `${b.dataset.role}: ${(b.querySelector('.body, .text') || b).textContent.trim()}`),
  );
}

async function ask(page, question, answers) {
  await page.locator(sel.input).fill(question);
  await page.locator(sel.send).click();
  await page.locator(`${sel.assistant}[data-state="completed"]`).nth(answers - 1).waitFor({ timeout: 20_000 });
}

test('two tabs in one session see the same transcript, live', async () => {
  const url = host.page('/tabs', embedPage(gateway.url, { attributes: { 'storage-key': 'tabs', 'chat-title': 'Tabs' } }));
  const context = await browser.newContext({ viewport: { width: 800, height: 800 } });
  const first = await context.newPage();
  await first.goto(url);
  await online(first);
  await ask(first, 'What is Switchboard?', 1);

  // The second tab finds the conversation in localStorage and replays it.
  const second = await context.newPage();
  await second.goto(url);
  await online(second);
  await second.locator(`${sel.assistant}[data-state="completed"]`).waitFor();
  assert.equal(await storedSessionId(second), await storedSessionId(first));
  assert.deepEqual(await transcript(second), await transcript(first));

  // A question from the second tab streams into both.
  await ask(second, 'How do I deploy on Kubernetes?', 2);
  await first.locator(`${sel.assistant}[data-state="completed"]`).nth(1).waitFor({ timeout: 20_000 });
  const both = await transcript(first);
  assert.deepEqual(await transcript(second), both);
  assert.equal(both.length, 4, both.join('\n'));
  assert.match(both[2], /^user: How do I deploy on Kubernetes\?$/);
  await screenshot(first, 'two-tabs-first');
  await screenshot(second, 'two-tabs-second');

  // Another browser profile (other storage) starts its own conversation.
  const stranger = await browser.newContext();
  const other = await stranger.newPage();
  await other.goto(url);
  await online(other);
  assert.equal(await other.locator('switchboard-chat .msg:not(.greeting)').count(), 0);
  await stranger.close();
  await context.close();
});

test('a reload keeps the conversation, shown once, and goes on from there', async () => {
  const url = host.page('/reload', embedPage(gateway.url, { attributes: { 'storage-key': 'reload' } }));
  const context = await browser.newContext({ viewport: { width: 800, height: 800 } });
  const page = await context.newPage();
  await page.goto(url);
  await online(page);
  await ask(page, 'What happens to a slow consumer?', 1);
  const before = await transcript(page);
  const sessionId = await storedSessionId(page);

  const frames = recordFrames(page);
  await page.reload();
  await online(page);
  await page.locator(`${sel.assistant}[data-state="completed"]`).waitFor();
  assert.deepEqual(await transcript(page), before, 'the same transcript after the reload');
  const join = frames.sent.find((f) => f.type === 'session.join');
  assert.equal(join.session_id, sessionId);
  assert.ok(join.session_key?.startsWith('k_'), 'the anonymous session key was kept');
  assert.equal(frames.sent.filter((f) => f.type === 'session.create').length, 0);

  await ask(page, 'What is Switchboard?', 2);
  assert.equal((await transcript(page)).length, 4);
  assert.equal(await storedSessionId(page), sessionId);

  // Another storage-key on the same gateway is another conversation.
  const otherUrl = host.page('/reload-other', embedPage(gateway.url, { attributes: { 'storage-key': 'something-else' } }));
  await page.goto(otherUrl);
  await online(page);
  assert.equal(await page.locator('switchboard-chat .msg:not(.greeting)').count(), 0);
  await context.close();
});
