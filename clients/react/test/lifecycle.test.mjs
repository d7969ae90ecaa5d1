// The hook's client lives as long as the component: one client (one WebSocket) across
// any number of renders with fresh option objects, one live connection under
// StrictMode's mount–unmount–mount, and the connection closed on unmount (the gateway
// sees it go).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ask, fixture, openConnections, sel, until } from './support/harness.mjs';

const fx = fixture();

test('re-renders keep the one connection; unmounting closes it', async () => {
  const gateway = await fx.gateway(['--offline-agent-delay', '10ms']);
  const { page, errors, sockets } = await fx.open(gateway.url);
  await page.locator(sel.chat('open')).waitFor();
  assert.equal(await openConnections(gateway), 1);

  // The parent renders the chat again with a new options object, a few times, and an answer streams (a render per delta).
  for (let n = 1; n <= 3; n += 1) {
    await page.evaluate(() => window.chatPage.rerender());
    await page.locator(`#host[data-renders="${n}"]`).waitFor();
  }
  await ask(page, 'What happens to a slow consumer?');
  await page.locator(`${sel.assistant}[data-status="completed"]`).waitFor();
  assert.equal(sockets.length, 1, 'no new client, so no new WebSocket');
  assert.equal(sockets[0].isClosed(), false);
  assert.equal(await openConnections(gateway), 1);

  const closed = sockets[0].waitForEvent('close');
  await page.evaluate(() => window.chatPage.unmount());
  await closed;
  await until(async () => (await openConnections(gateway)) === 0, 'the gateway to see the socket close');
  assert.equal(await page.locator('#chat').count(), 0);
  assert.deepEqual(errors, []);
});

test('under StrictMode one connection stays open and the conversation works', async () => {
  const gateway = await fx.gateway(['--offline-agent-delay', '10ms']);
  const { page, errors, sockets } = await fx.open(gateway.url, {}, { strict: true });
  await page.locator(sel.chat('open')).waitFor();
  await ask(page, 'How do I resume after a disconnect?');
  await page.locator(`${sel.assistant}[data-status="completed"]`).waitFor();
  assert.equal(await page.locator(sel.user).count(), 1);
  assert.equal(await page.locator(sel.assistant).count(), 1);
  // StrictMode's extra unmount closed its socket; one stays open, on the gateway too.
  assert.equal(sockets.filter((ws) => !ws.isClosed()).length, 1);
  await until(async () => (await openConnections(gateway)) === 1, 'one connection on the gateway');

  await page.evaluate(() => window.chatPage.unmount());
  await until(async () => (await openConnections(gateway)) === 0, 'the gateway to see the socket close');
  assert.deepEqual(errors, []);
});
