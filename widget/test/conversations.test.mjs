// A signed-in user's conversations: the list (titles from first messages, newest
// first), switching between them with each one's whole history, starting a new one,
// renaming and deleting; a reload keeps the current one. Anonymous visitors keep their
// one conversation and see none of it. Conversations are stored under --data-dir, so a
// gateway restarted on the same directory shows them whole after a reload.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  ADMIN_KEY,
  HostPages,
  KEY_FLAGS,
  api,
  embedPage,
  history,
  launchBrowser,
  normalized,
  readable,
  recordFrames,
  screenshot,
  sel,
  signJwt,
  storedSessionId,
} from './support/browser.mjs';
import { Gateway } from './support/processes.mjs';

const SECRET = 'widget-conversations-secret-0123456789abcdef';
const dataDirs = [];
const gateways = [];
let gateway;
let browser;
let host;

function dataDir() {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-widget-data-'));
  dataDirs.push(dir);
  return dir;
}

async function startGateway(name) {
  const args = ['--demo-seed', '--offline-agent-delay', '10ms', '--jwt-hs256-secret', SECRET, '--data-dir', dataDir(), ...KEY_FLAGS];
  const started = await Gateway.start(args, { name });
  gateways.push(started);
  return started;
}

before(async () => {
  gateway = await startGateway('conversations');
  browser = await launchBrowser();
  host = await HostPages.start();
});

after(async () => {
  await browser?.close();
  await host?.close();
  for (const started of gateways) started.kill();
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

const conv = {
  toggle: 'switchboard-chat button.conversations-toggle',
  newButton: 'switchboard-chat button.new-conversation',
  panel: 'switchboard-chat #sb-conversations',
  item: 'switchboard-chat #sb-conversations li.conv',
  current: 'switchboard-chat #sb-conversations li.conv[data-current]',
};

/** A page embedding the widget for `user` (a token provider signs their JWT), or anonymous. */
function chatPage(gatewayUrl, path, { user = null, storageKey = path.slice(1) } = {}) {
  const attributes = { 'storage-key': storageKey, 'chat-title': 'Shop help' };
  if (!user) return host.page(path, embedPage(gatewayUrl, { attributes }));
  const now = Math.floor(Date.now() / 1000);
  const token = signJwt(SECRET, { sub: user, org_id: 'default', groups: [], roles: [], exp: now + 3600, iat: now });
  return host.page(
    path,
    embedPage(gatewayUrl, {
      attributes: { ...attributes, 'token-provider': 'getChatToken' },
      beforeScript: `<script>window.getChatToken = async () => ${JSON.stringify(token)};</script>`,
    }),
  );
}

async function online(page) {
  await page.waitForFunction(() => document.querySelector('switchboard-chat')?.status === 'online', null, { timeout: 30_000 });
}

/** What a person reads in the transcript: role and text of each bubble, in order. */
function transcript(page) {
  return page.locator('switchboard-chat .msg:not(.greeting)').evaluateAll((bubbles) =>
    bubbles.map((b) => `${b.dataset.role}: ${(b.querySelector('.body, .text') || b).textContent.trim()}`),
  );
}

/** Wait until the transcript has `n` bubbles and none is still streaming or sending. */
async function settled(page, n) {
  await page.waitForFunction(
    (count) => {
      const root = document.querySelector('switchboard-chat').shadowRoot;
      const bubbles = root.querySelectorAll('.msg:not(.greeting)');
      return bubbles.length === count && !root.querySelector('.msg[data-state="streaming"], .msg[data-state="pending"]');
    },
    n,
    { timeout: 20_000 },
  );
}

async function ask(page, question) {
  const before = await page.locator('switchboard-chat .msg:not(.greeting)').count();
  await page.locator(sel.input).fill(question);
  await page.locator(sel.send).click();
  await settled(page, before + 2);
}

/** The list as a person reads it: each conversation's title, and which one is current. */
async function listed(page) {
  await page.locator(conv.panel).waitFor();
  await page.waitForFunction(() => {
    const status = document.querySelector('switchboard-chat').shadowRoot.querySelector('.conv-status');
    return status && !/Loading/.test(status.textContent);
  });
  return page.locator(conv.item).evaluateAll((items) =>
    items.map((li) => `${li.hasAttribute('data-current') ? '* ' : ''}${li.querySelector('.conv-title').textContent}`),
  );
}

async function openList(page) {
  await page.locator(conv.toggle).click();
  return listed(page);
}

test('a signed-in user lists, switches between and starts conversations; a reload keeps the current one', async () => {
  const url = chatPage(gateway.url, '/alice', { user: 'alice' });
  const context = await browser.newContext({ viewport: { width: 820, height: 820 } });
  const page = await context.newPage();
  const frames = recordFrames(page);
  await page.goto(url);
  await online(page);
  await page.locator(conv.toggle).waitFor();
  assert.equal(await page.locator(conv.toggle).getAttribute('aria-expanded'), 'false');
  assert.equal(await page.locator(conv.newButton).getAttribute('aria-label'), 'New conversation');

  await ask(page, 'What is Switchboard?');
  const first = await storedSessionId(page);
  const firstTranscript = await transcript(page);

  await page.locator(conv.newButton).click();
  await page.waitForFunction((id) => {
    const client = document.querySelector('switchboard-chat').client;
    return client.sessionId && client.sessionId !== id;
  }, first);
  assert.equal(await page.locator('switchboard-chat .msg:not(.greeting)').count(), 0, 'a new conversation starts empty');
  await ask(page, 'How do I deploy on Kubernetes?');
  const second = await storedSessionId(page);
  assert.notEqual(second, first);
  const secondTranscript = await transcript(page);

  // Both are listed, newest activity first, titled by their first message; the one on
  // screen is marked current. The log and the composer give way to the list.
  assert.deepEqual(await openList(page), ['* How do I deploy on Kubernetes?', 'What is Switchboard?']);
  assert.equal(await page.locator(conv.toggle).getAttribute('aria-expanded'), 'true');
  assert.equal(await page.locator(sel.input).isVisible(), false);
  assert.equal(await page.locator(`${conv.current} .conv-open`).getAttribute('aria-current'), 'true');
  const top = page.locator(conv.item).first();
  assert.match(await top.locator('.conv-preview').textContent(), /\S/, 'a preview of the last message');
  assert.match(await top.locator('.conv-time').textContent(), /now|second|minute/);
  const list = frames.sent.filter((f) => f.type === 'session.list').at(-1);
  assert.equal(list.scope, 'mine');
  await screenshot(page, 'conversations-list');

  // Opening the older one replays its whole history in place of the other.
  const joinsBefore = frames.sent.filter((f) => f.type === 'session.join').length;
  await page.locator(conv.item).filter({ hasText: 'What is Switchboard?' }).locator('.conv-open').click();
  assert.equal(await page.locator(conv.panel).isVisible(), false, 'the list closes');
  await settled(page, 2);
  assert.deepEqual(await transcript(page), firstTranscript);
  const join = frames.sent.filter((f) => f.type === 'session.join').slice(joinsBefore)[0];
  assert.deepEqual([join.session_id, join.after_seq], [first, 0]);
  assert.equal(await storedSessionId(page), first);
  const ends = (await history(gateway.url, first)).filter((e) => e.type === 'turn.end');
  assert.equal(await readable(page.locator(`${sel.assistant} .body`).first()), normalized(ends[0].text));
  await screenshot(page, 'conversations-switched');

  // And back.
  await openList(page);
  await page.locator(conv.item).filter({ hasText: 'How do I deploy on Kubernetes?' }).locator('.conv-open').click();
  await settled(page, 2);
  assert.deepEqual(await transcript(page), secondTranscript);
  await openList(page);
  await page.locator(conv.item).filter({ hasText: 'What is Switchboard?' }).locator('.conv-open').click();
  await settled(page, 2);

  // A reload comes back to the conversation that was on screen, and to the same list.
  await page.reload();
  await online(page);
  await settled(page, 2);
  assert.deepEqual(await transcript(page), firstTranscript);
  assert.deepEqual(await openList(page), ['How do I deploy on Kubernetes?', '* What is Switchboard?']);

  // A new conversation from here shows first in the list, untitled until its first message.
  await page.locator(conv.newButton).click();
  await page.waitForFunction((ids) => {
    const id = document.querySelector('switchboard-chat').client.sessionId;
    return id && !ids.includes(id);
  }, [first, second]);
  assert.equal(await page.locator(sel.input).isVisible(), true, 'back to the transcript, ready to type');
  assert.deepEqual(await openList(page), ['* New conversation', 'How do I deploy on Kubernetes?', 'What is Switchboard?']);
  await page.keyboard.press('Escape');
  assert.equal(await page.locator(conv.panel).isVisible(), false, 'Escape closes the list');
  await ask(page, 'What happens to a slow consumer?');
  assert.deepEqual(await openList(page), ['* What happens to a slow consumer?', 'How do I deploy on Kubernetes?', 'What is Switchboard?']);
  assert.equal(frames.sent.filter((f) => f.type === 'session.create').length, 3);
  await context.close();
});

test('the list works from the keyboard: open, choose, Escape; rename; archive; delete asks first', async () => {
  const url = chatPage(gateway.url, '/bob', { user: 'bob' });
  const context = await browser.newContext({ viewport: { width: 820, height: 820 } });
  const page = await context.newPage();
  const frames = recordFrames(page);
  await page.goto(url);
  await online(page);
  await ask(page, 'What is Switchboard?');
  const kept = await storedSessionId(page);
  await page.locator(conv.newButton).click();
  await page.waitForFunction((id) => document.querySelector('switchboard-chat').client.sessionId !== id, kept);
  await ask(page, 'How do I deploy on Kubernetes?');
  const doomed = await storedSessionId(page);

  // Keyboard: the toggle is a button in the tab order; Enter opens the list with focus
  // in it; Escape closes it and focus goes back to the toggle.
  await page.locator(conv.toggle).focus();
  await page.keyboard.press('Enter');
  assert.deepEqual(await listed(page), ['* How do I deploy on Kubernetes?', 'What is Switchboard?']);
  const focusedClass = () => page.evaluate(() => document.querySelector('switchboard-chat').shadowRoot.activeElement?.className ?? null);
  await page.keyboard.press('Tab');
  assert.equal(await focusedClass(), 'link-btn conv-state', 'Tab reaches "Show archived"');
  await page.keyboard.press('Tab');
  assert.equal(await focusedClass(), 'conv-open', 'then the first conversation');
  await page.keyboard.press('Escape');
  assert.equal(await page.locator(conv.panel).isVisible(), false);
  assert.match(await focusedClass(), /conversations-toggle/, 'focus returns to the toggle');

  // Rename the older one.
  await openList(page);
  const older = page.locator(conv.item).filter({ hasText: 'What is Switchboard?' });
  await older.locator('.conv-rename').click();
  const titleInput = older.locator('input.conv-title-input');
  assert.equal(await titleInput.getAttribute('aria-label'), 'New title');
  await titleInput.fill('About Switchboard');
  await page.keyboard.press('Enter');
  await page.locator(conv.item).filter({ hasText: 'About Switchboard' }).waitFor();
  await page.keyboard.press('Escape');
  assert.deepEqual(await openList(page), ['* How do I deploy on Kubernetes?', 'About Switchboard']);

  // Archive it: it leaves the list for the archived ones, and comes back from there.
  const count = (n) => page.waitForFunction((want) => document.querySelector('switchboard-chat').shadowRoot.querySelectorAll('li.conv').length === want, n);
  await page.locator(conv.item).filter({ hasText: 'About Switchboard' }).locator('.conv-archive').click();
  await count(1);
  assert.deepEqual(await listed(page), ['* How do I deploy on Kubernetes?']);
  assert.match(await page.locator('switchboard-chat .conv-status').textContent(), /Archived “About Switchboard”/);
  await page.locator('switchboard-chat .conv-state').click();
  assert.deepEqual(await listed(page), ['About Switchboard']);
  assert.equal(await page.locator('switchboard-chat #sb-conversations-title').textContent(), 'Archived conversations');
  assert.equal(frames.sent.filter((f) => f.type === 'session.list').at(-1).state, 'archived');
  await screenshot(page, 'conversations-archived');
  await page.locator(conv.item).locator('.conv-archive').click(); // "Unarchive"
  await count(0);
  assert.match(await page.locator('switchboard-chat .conv-status').textContent(), /No archived conversations/);
  await page.locator('switchboard-chat .conv-state').click();
  assert.deepEqual(await listed(page), ['* How do I deploy on Kubernetes?', 'About Switchboard']);

  // Delete the current one: first a question, and Cancel keeps it.
  const current = page.locator(conv.current);
  await current.locator('.conv-delete').click();
  const confirm = current.locator('.conv-confirm');
  assert.match(await confirm.textContent(), /Delete “How do I deploy on Kubernetes\?” for good\?/);
  await screenshot(page, 'conversations-delete-confirm');
  await confirm.locator('.conv-cancel').click();
  assert.equal(await current.locator('.conv-confirm').count(), 0);
  assert.equal(await page.locator(conv.item).count(), 2);

  await current.locator('.conv-delete').click();
  await current.locator('.conv-confirm-delete').click();
  await page.waitForFunction(() => document.querySelector('switchboard-chat').shadowRoot.querySelectorAll('li.conv').length === 1);
  assert.deepEqual(await listed(page), ['About Switchboard']);
  assert.equal(await page.locator('switchboard-chat .msg:not(.greeting)').count(), 0, 'its transcript left the screen');
  assert.equal(await storedSessionId(page), null, 'and the widget forgot it');
  const gone = await api(gateway.url, 'GET', `/v1/sessions/${doomed}/events`, ADMIN_KEY);
  assert.equal(gone.status, 404, 'deleted on the gateway too');

  // Still listed after a reload; the next message starts a new conversation.
  await page.reload();
  await online(page);
  assert.deepEqual(await openList(page), ['About Switchboard']);
  await page.keyboard.press('Escape');
  await ask(page, 'What happens to a slow consumer?');
  assert.notEqual(await storedSessionId(page), kept);
  assert.equal((await openList(page)).length, 2);
  await context.close();
});

test('a long list comes 20 at a time, with Load more until the last page', async () => {
  const url = chatPage(gateway.url, '/dave', { user: 'dave' });
  const context = await browser.newContext({ viewport: { width: 820, height: 820 } });
  const page = await context.newPage();
  const frames = recordFrames(page);
  await page.goto(url);
  await online(page);
  // 22 conversations made over a socket of the page's own: create, then leave (so the
  // per-connection session limit is never reached), paced under the frame rate limit.
  const created = await page.evaluate(
    async ({ wsUrl, token, count }) => {
      const ws = new WebSocket(`${wsUrl}?token=${token}`, 'switchboard.v1');
      const pending = new Map();
      ws.onmessage = (message) => {
        const frame = JSON.parse(message.data);
        pending.get(frame.re)?.(frame);
      };
      const closed = new Promise((_, reject) => {
        ws.onclose = (close) => reject(new Error(`closed ${close.code} ${close.reason}`));
      });
      const ask = (frame) =>
        Promise.race([
          closed,
          new Promise((resolve) => {
            pending.set(frame.id, resolve);
            ws.send(JSON.stringify(frame));
          }),
        ]);
      await new Promise((resolve) => {
        ws.onopen = resolve;
      });
      const ids = [];
      for (let i = 0; i < count; i += 1) {
        const reply = await ask({ id: `c${i}`, type: 'session.create' });
        if (reply.type !== 'session.created') throw new Error(JSON.stringify(reply));
        ids.push(reply.session_id);
        await ask({ id: `l${i}`, type: 'session.leave', session_id: reply.session_id });
        await new Promise((resolve) => setTimeout(resolve, 120));
      }
      ws.onclose = null;
      ws.close();
      return ids;
    },
    { wsUrl: `${gateway.url.replace('http:', 'ws:')}/ws`, token: await page.evaluate(() => window.getChatToken()), count: 22 },
  );
  assert.equal(new Set(created).size, 22);

  assert.equal((await openList(page)).length, 20);
  const more = page.locator('switchboard-chat .conv-more');
  assert.equal(await more.isVisible(), true);
  await more.click();
  await page.waitForFunction(() => document.querySelector('switchboard-chat').shadowRoot.querySelectorAll('li.conv').length === 22);
  assert.equal(await more.isVisible(), false, 'no more pages');
  const ids = await page.locator(conv.item).evaluateAll((items) => items.map((li) => li.dataset.sessionId));
  assert.deepEqual([...ids].sort(), [...created].sort(), 'each conversation once, none missing');
  const lists = frames.sent.filter((f) => f.type === 'session.list');
  assert.equal(lists.length, 2);
  assert.equal(lists[1].cursor, frames.received.find((f) => f.re === lists[0].id).next_cursor);
  await context.close();
});

test('an anonymous visitor sees no list and keeps their one conversation across a reload', async () => {
  const url = chatPage(gateway.url, '/anonymous');
  const context = await browser.newContext({ viewport: { width: 820, height: 700 } });
  const page = await context.newPage();
  const frames = recordFrames(page);
  await page.goto(url);
  await online(page);
  await ask(page, 'What is Switchboard?');
  const before = await transcript(page);
  const sessionId = await storedSessionId(page);
  assert.equal(await page.locator(conv.toggle).isVisible(), false);
  assert.equal(await page.locator(conv.newButton).isVisible(), false);

  await page.reload();
  await online(page);
  await settled(page, before.length);
  assert.deepEqual(await transcript(page), before);
  assert.equal(await storedSessionId(page), sessionId);
  assert.equal(await page.locator(conv.toggle).isVisible(), false);
  assert.equal(frames.sent.filter((f) => f.type === 'session.list').length, 0, 'never asks for a list');
  await screenshot(page, 'conversations-anonymous');
  await context.close();
});

test('after the gateway restarts on the same data dir, a reload shows the whole earlier conversation', async () => {
  const restarting = await startGateway('conversations-restart');
  const context = await browser.newContext({ viewport: { width: 820, height: 820 } });
  const signedIn = await context.newPage();
  await signedIn.goto(chatPage(restarting.url, '/restart-carol', { user: 'carol' }));
  await online(signedIn);
  await ask(signedIn, 'What is Switchboard?');
  await ask(signedIn, 'How do I deploy on Kubernetes?');
  const carolBefore = await transcript(signedIn);
  const anonymous = await context.newPage();
  await anonymous.goto(chatPage(restarting.url, '/restart-anonymous'));
  await online(anonymous);
  await ask(anonymous, 'What happens to a slow consumer?');
  const anonymousBefore = await transcript(anonymous);

  const exit = await restarting.terminate();
  assert.deepEqual(exit, { code: 0, signal: null });
  await restarting.start(restarting.port);

  for (const [page, before] of [
    [signedIn, carolBefore],
    [anonymous, anonymousBefore],
  ]) {
    const frames = recordFrames(page);
    await page.reload();
    await online(page);
    await settled(page, before.length);
    assert.deepEqual(await transcript(page), before);
    assert.equal(frames.sent.filter((f) => f.type === 'session.create').length, 0, 'the same conversation, not a new one');
  }
  assert.deepEqual(await openList(signedIn), ['* What is Switchboard?']);
  await signedIn.keyboard.press('Escape');
  await screenshot(signedIn, 'conversations-after-restart');
  await context.close();
});
