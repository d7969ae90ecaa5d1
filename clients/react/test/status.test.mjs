// `status` follows the connection the client keeps: `connecting`, `open`,
// `reconnecting` while the gateway is gone and `open` again when it is back (the
// conversation resumed), `fallback` when a proxy breaks WebSocket upgrades (the chat
// carries on over SSE and REST), `closed` with the gateway's reason in `error` when it
// refuses the token.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UpgradeBreakingProxy, ask, fixture, sel, signJwt } from './support/harness.mjs';

const fx = fixture();
const FAST_BACKOFF = { backoff: { initialMs: 50, maxMs: 300, factor: 2 } };

const statuses = (page) => page.evaluate(() => window.__statuses);

test('connecting, open, reconnecting while the gateway is down, open again with the conversation', async () => {
  const gateway = await fx.gateway(['--offline-agent-delay', '10ms']);
  const { page } = await fx.open(gateway.url, FAST_BACKOFF);
  await page.locator(sel.chat('open')).waitFor();
  await ask(page, 'What happens to a slow consumer?');
  await page.locator(`${sel.assistant}[data-status="completed"]`).waitFor();
  const sessionId = await page.locator('#chat').getAttribute('data-session-id');

  gateway.kill();
  await gateway.exited;
  await page.locator(sel.chat('reconnecting')).waitFor();
  await gateway.start(gateway.port); // same port and data directory
  await page.locator(sel.chat('open')).waitFor();

  // Resumed, not restarted: the same session, and a new answer joins the transcript.
  await ask(page, 'How do I resume after a disconnect?');
  await page.locator(`${sel.assistant}[data-status="completed"]`).nth(1).waitFor();
  assert.equal(await page.locator('.msg').count(), 4);
  assert.equal(await page.locator('#chat').getAttribute('data-session-id'), sessionId);

  assert.deepEqual(await statuses(page), ['connecting', 'open', 'reconnecting', 'open']);
});

test('fallback: behind a proxy that refuses WebSocket upgrades, the chat works over HTTP', async () => {
  const gateway = await fx.gateway(['--offline-agent-delay', '10ms', '--cors-origins', fx.page.url]);
  const proxy = await UpgradeBreakingProxy.start(gateway.url);
  try {
    const { page } = await fx.open(proxy.url, FAST_BACKOFF);
    await page.locator(sel.chat('fallback')).waitFor();
    await ask(page, 'What happens to a slow consumer?');
    await page.locator(`${sel.assistant}[data-status="completed"]`).waitFor();
    assert.ok(proxy.upgradesRefused >= 2, 'WebSockets were tried first');
    assert.ok(proxy.streamRequests.length >= 1, 'the events came over SSE');
    const seen = await statuses(page);
    assert.equal(seen[0], 'connecting');
    assert.equal(seen.at(-1), 'fallback');
    assert.ok(!seen.includes('open'), `never open over a WebSocket (${seen})`);
  } finally {
    await proxy.close();
  }
});

test('closed, with the reason in error, when the gateway refuses the token', async () => {
  const gateway = await fx.gateway();
  const expired = signJwt({ sub: 'ana', exp: Math.floor(Date.now() / 1000) - 3600 });
  const { page } = await fx.open(gateway.url, { token: expired, ...FAST_BACKOFF });
  await page.locator(sel.chat('closed')).waitFor();
  const error = page.locator('#error');
  assert.equal(await error.getAttribute('data-code'), 'unauthorized');
  assert.match(await error.textContent(), /expired|exp/i);
  assert.deepEqual(await statuses(page), ['connecting', 'closed']);
});
