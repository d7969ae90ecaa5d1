// Signed-in visitors: the widget gets its JWT from the host page's token provider,
// refreshes it with auth.refresh before `exp` so the connection never drops, and uses
// a fresh token when it reconnects.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HostPages, embedPage, launchBrowser, recordFrames, recordStatuses, sel, signJwt } from './support/browser.mjs';
import { Gateway } from './support/processes.mjs';

const SECRET = 'widget-test-secret-0123456789abcdef';
/** Tokens live this long: the gateway closes a connection at `exp` without a refresh. */
const TOKEN_SECONDS = 5;

let gateway;
let browser;
let host;

before(async () => {
  gateway = await Gateway.start(
    ['--demo-seed', '--offline-agent-delay', '10ms', '--jwt-hs256-secret', SECRET, '--allow-anonymous', 'false', '--jwt-leeway', '0s'],
    { name: 'auth' },
  );
  browser = await launchBrowser();
  host = await HostPages.start();
});

after(async () => {
  await browser?.close();
  await host?.close();
  gateway?.kill();
});

test('a short-lived token is refreshed through the provider before it expires; the connection never drops', async () => {
  // The host page's provider asks "its backend" (the test) for a token, as a real page would.
  const url = host.page(
    '/auth',
    embedPage(gateway.url, {
      attributes: { 'storage-key': 'auth', 'token-provider': 'getChatToken' },
      beforeScript: `<script>window.tokenCalls = 0; window.getChatToken = async () => { window.tokenCalls += 1; return mintToken(); };</script>`,
    }),
  );
  const context = await browser.newContext();
  const page = await context.newPage();
  const minted = [];
  await page.exposeFunction('mintToken', () => {
    const now = Math.floor(Date.now() / 1000);
    const token = signJwt(SECRET, { sub: 'alice', org_id: 'default', groups: ['support'], roles: [], exp: now + TOKEN_SECONDS, iat: now });
    minted.push(token);
    return token;
  });
  await recordStatuses(page);
  const frames = recordFrames(page);
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await page.goto(url);
  await page.waitForFunction(() => document.querySelector('switchboard-chat')?.status === 'online');

  const welcome = frames.received.find((f) => f.type === 'welcome');
  assert.equal(welcome.principal.user_id, 'alice', 'connected as the provider token’s subject');
  assert.equal(welcome.principal.anonymous, false);
  assert.ok(sockets[0].includes(`token=${minted[0]}`), 'the first token is in the /ws URL');

  // Outlive three token lifetimes.
  await page.waitForTimeout(TOKEN_SECONDS * 3 * 1000);
  const refreshes = frames.sent.filter((f) => f.type === 'auth.refresh');
  const refreshed = frames.received.filter((f) => f.type === 'auth.refreshed');
  assert.ok(refreshes.length >= 3, `refreshed ${refreshes.length} times`);
  assert.ok(refreshed.length >= 3);
  assert.ok(refreshes.every((f) => minted.includes(f.token)), 'each refresh carries a token from the provider');
  assert.equal(sockets.length, 1, 'one connection all along');
  assert.deepEqual(
    frames.received.filter((f) => f.type === 'error'),
    [],
    'no token_expired (or any other) error',
  );
  const statuses = await page.evaluate(() => window.__statuses);
  assert.deepEqual(statuses.slice(statuses.indexOf('online')), ['online'], statuses.join(' → '));

  // Still signed in and working: the conversation belongs to alice.
  await page.locator(sel.input).fill('What is Switchboard?');
  await page.locator(sel.send).click();
  await page.locator(`${sel.assistant}[data-state="completed"]`).waitFor({ timeout: 20_000 });
  const created = frames.received.find((f) => f.type === 'session.created');
  assert.equal(created.session_key, undefined, 'a signed-in session needs no key');
  assert.ok((await page.evaluate(() => window.tokenCalls)) >= 4);
  await context.close();
});

test('without a token provider, a gateway that refuses anonymous visitors shows the widget unavailable', async () => {
  const url = host.page('/no-token', embedPage(gateway.url, { attributes: { 'storage-key': 'no-token' } }));
  const context = await browser.newContext();
  const page = await context.newPage();
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await page.goto(url);
  await page.waitForFunction(() => document.querySelector('switchboard-chat')?.status === 'unauthorized');
  assert.match(await page.locator(sel.banner).textContent(), /sign-in was refused/);
  await page.waitForTimeout(1500);
  assert.equal(sockets.length, 1, 'no retry loop with credentials that cannot work');
  await context.close();
});
