// Behind a proxy that breaks WebSocket upgrades the widget still chats: it falls back
// to Server-Sent Events for receiving and the REST routes for sending, the answer
// streams in live, and a dropped event stream resumes with each event exactly once.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { HostPages, KEY_FLAGS, embedPage, history, launchBrowser, normalized, readable, sel, storedSessionId } from './support/browser.mjs';
import { Gateway } from './support/processes.mjs';
import { UpgradeBreakingProxy } from './support/upgrade-proxy.mjs';

const fx = { browser: null, host: null, gateways: [], proxies: [] };
before(async () => {
  [fx.browser, fx.host] = await Promise.all([launchBrowser(), HostPages.start()]);
});
after(async () => {
  await fx.browser?.close();
  await fx.host?.close();
  for (const proxy of fx.proxies) await proxy.close();
  for (const gateway of fx.gateways) gateway.kill();
});

/** A gateway behind a proxy that refuses upgrades; the host pages may call its API. */
async function blockedGateway(name, delay) {
  const origin = new URL(fx.host.url('/')).origin;
  const gateway = await Gateway.start(['--demo-seed', '--offline-agent-delay', delay, '--cors-origins', origin, ...KEY_FLAGS], { name });
  fx.gateways.push(gateway);
  const proxy = await UpgradeBreakingProxy.start(gateway.url);
  fx.proxies.push(proxy);
  return { gateway, proxy };
}

async function openWidget(proxy, name) {
  const url = fx.host.page(`/${name}`, embedPage(proxy.url, { attributes: { 'storage-key': name } }));
  const context = await fx.browser.newContext({ viewport: { width: 800, height: 760 } });
  const page = await context.newPage();
  await page.addInitScript(() => {
    window.__deltas = 0;
    window.__statuses = [];
    document.addEventListener('switchboard:status', (event) => window.__statuses.push(event.detail.state));
  });
  await page.goto(url);
  await page.waitForFunction(() => document.querySelector('switchboard-chat')?.client?.transport === 'http', null, { timeout: 30_000 });
  await page.waitForFunction(() => document.querySelector('switchboard-chat').status === 'online', null, { timeout: 30_000 });
  // Count the deltas the client hands the widget: the answer arrives in pieces, live.
  await page.evaluate(() => {
    document.querySelector('switchboard-chat').client.addEventListener('event', (e) => {
      if (e.detail.type === 'turn.delta') window.__deltas += 1;
    });
  });
  return { context, page };
}

test('WebSocket upgrades refused: the widget sends over REST and streams the answer live over SSE', async () => {
  const { gateway, proxy } = await blockedGateway('fallback', '60ms');
  const { context, page } = await openWidget(proxy, 'fallback');
  assert.ok(proxy.upgradesRefused >= 2, `upgrades refused: ${proxy.upgradesRefused}`);

  await page.locator(sel.input).fill('How does reconnecting and resuming work?');
  await page.locator(sel.send).click();
  // Live: the bubble is streaming with part of the answer before the turn ends.
  await page.waitForFunction(() => {
    const body = document.querySelector('switchboard-chat').shadowRoot.querySelector('.msg[data-state="streaming"] .body');
    return body && body.textContent.split(' ').length >= 4;
  }, null, { timeout: 20_000 });
  const done = page.locator(`${sel.assistant}[data-state="completed"]`);
  await done.waitFor({ timeout: 30_000 });

  const sessionId = await storedSessionId(page);
  const events = await history(gateway.url, sessionId);
  const ends = events.filter((e) => e.type === 'turn.end');
  assert.equal(ends.length, 1);
  assert.equal(await readable(done.locator('.body')), normalized(ends[0].text));
  assert.equal(events.filter((e) => e.type === 'message' && e.role === 'user').length, 1, 'the message was appended once');
  assert.equal(await page.locator(sel.user).count(), 1);
  assert.equal(await page.locator(sel.assistant).count(), 1);
  const deltas = events.filter((e) => e.type === 'turn.delta').length;
  assert.equal(await page.evaluate(() => window.__deltas), deltas, 'every delta once');
  assert.ok(proxy.streamRequests.length >= 1 && proxy.streamRequests.every((r) => !r.url.includes('token=')));
  await context.close();
});

test('a dropped event stream resumes after the last seq: the whole answer, no duplicate, no gap', async () => {
  const { gateway, proxy } = await blockedGateway('fallback-resume', '150ms');
  const { context, page } = await openWidget(proxy, 'fallback-resume');

  await page.locator(sel.input).fill('How does reconnecting and resuming work?');
  await page.locator(sel.send).click();
  await page.waitForFunction(() => window.__deltas >= 3, null, { timeout: 20_000 });
  const before = proxy.streamRequests.length;
  assert.ok(proxy.dropStreams() >= 1, 'an event stream was open');

  const done = page.locator(`${sel.assistant}[data-state="completed"]`);
  await done.waitFor({ timeout: 30_000 });
  const resumed = proxy.streamRequests.slice(before);
  assert.ok(resumed.length >= 1, 'the stream was opened again');
  const afterSeq = Number(new URL(resumed[0].url, 'http://x').searchParams.get('after_seq'));
  assert.ok(afterSeq > 0, `resumed after a seq: ${resumed[0].url}`);

  const sessionId = await storedSessionId(page);
  const events = await history(gateway.url, sessionId);
  const ends = events.filter((e) => e.type === 'turn.end');
  assert.equal(ends.length, 1);
  assert.equal(await readable(done.locator('.body')), normalized(ends[0].text), 'the whole answer, once');
  const deltas = events.filter((e) => e.type === 'turn.delta').length;
  assert.equal(await page.evaluate(() => window.__deltas), deltas, 'each delta exactly once');
  assert.equal(await page.locator(sel.assistant).count(), 1);
  assert.equal(await page.locator(sel.user).count(), 1);
  const statuses = await page.evaluate(() => window.__statuses);
  assert.ok(statuses.includes('reconnecting'), statuses.join(' → '));
  assert.equal(statuses.at(-1), 'online');
  await context.close();
});
