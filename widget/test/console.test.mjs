// The operator console (`/console`) on its own: signing in (pasted, or `#token=`),
// tokens it refuses and why, staying signed in across a reload of the tab and signing
// out, and text from customers and tokens shown as text under its Trusted Types
// policy (nothing from the network is ever parsed as HTML). The handoff itself, with
// the widget, is handoff.test.mjs.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  HostPages,
  KEY_FLAGS,
  embedPage,
  launchBrowser,
  readable,
  sel,
  signJwt,
  storedSessionId,
  watchForXss,
} from './support/browser.mjs';
import { Gateway } from './support/processes.mjs';

const SECRET = 'console-secret-0123456789abcdef0123456789';
const IMG = `<img src=x onerror="xssFired('img')">`;
const SCRIPT = `<script>xssFired('script')</script>`;

let gateway;
let browser;
let host;

before(async () => {
  gateway = await Gateway.start(['--demo-seed', '--offline-agent-delay', '5ms', '--jwt-hs256-secret', SECRET, ...KEY_FLAGS], { name: 'console' });
  browser = await launchBrowser();
  host = await HostPages.start();
});

after(async () => {
  await browser?.close();
  await host?.close();
  gateway?.kill();
});

function token(sub, { name, roles = [], exp } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub, org_id: 'default', groups: [], roles, exp: exp ?? now + 3600, iat: now };
  if (name) claims.name = name;
  return signJwt(SECRET, claims);
}

/** A page that records errors, including Content-Security-Policy and Trusted Types violations. */
async function consolePage(context) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  return { page, errors };
}

test('signing in: a pasted operator token connects and survives a reload; sign out forgets it', async () => {
  const context = await browser.newContext();
  const { page, errors } = await consolePage(context);
  const response = await page.goto(`${gateway.url}/console`);
  assert.match(response.headers()['content-security-policy'], /require-trusted-types-for 'script'/);
  await page.locator('#sign-in-form').waitFor();
  assert.ok(await page.locator('#desk').isHidden());

  await page.locator('#token').fill(token('op-dana', { name: 'Dana', roles: ['operator'] }));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#connection').filter({ hasText: 'Connected' }).waitFor();
  assert.equal(await page.locator('#who-name').textContent(), 'Dana · default');
  assert.ok(await page.locator('#sign-in').isHidden());
  assert.equal(await page.locator('#conversation-title').textContent(), 'No conversation open');

  // The token lives in this tab's sessionStorage: a reload stays signed in.
  await page.reload();
  await page.locator('#connection').filter({ hasText: 'Connected' }).waitFor();
  assert.equal(await page.locator('#who-name').textContent(), 'Dana · default');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('#sign-in-form').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await page.reload();
  await page.locator('#sign-in-form').waitFor();
  assert.ok(await page.locator('#who').isHidden());
  assert.deepEqual(errors, []);
  await context.close();
});

test('tokens the console cannot use say why: a customer’s, a forged one, and none', async () => {
  const context = await browser.newContext();
  const { page } = await consolePage(context);

  // A customer's token connects, but is not staff.
  await page.goto(`${gateway.url}/console#token=${token('ana')}`);
  const problem = page.locator('#sign-in-error');
  await problem.waitFor();
  assert.match(await problem.textContent(), /not an operator’s: it needs the role operator or admin/);
  assert.equal(new URL(page.url()).hash, '', 'the token left the address bar');

  // A token signed with another key is refused by the gateway (close 4401).
  const forged = signJwt('another-secret-0123456789abcdef0123', { sub: 'op', roles: ['operator'], exp: Math.floor(Date.now() / 1000) + 600 });
  await page.locator('#token').fill(forged);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await problem.filter({ hasText: 'Your token was refused' }).waitFor();
  assert.ok(await page.locator('#desk').isHidden());

  await page.locator('#token').fill('   ');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await problem.filter({ hasText: 'Paste a token first.' }).waitFor();
  await context.close();
});

test('a customer’s message, a title and an operator’s name with HTML in them are shown as text', async () => {
  // A signed-in customer writes a payload in the widget.
  const customerToken = token('mallory');
  const customerContext = await browser.newContext();
  const customer = await customerContext.newPage();
  const customerUrl = host.page(
    '/console-xss',
    embedPage(gateway.url, {
      attributes: { 'storage-key': 'console-xss', 'token-provider': 'getChatToken' },
      beforeScript: `<script>window.getChatToken = async () => ${JSON.stringify(customerToken)};</script>`,
    }),
  );
  await customer.goto(customerUrl);
  const payload = `Help ${IMG} ${SCRIPT}`;
  await customer.locator(sel.input).fill(payload);
  await customer.locator(sel.send).click();
  await customer.locator(`${sel.assistant}[data-state="completed"]`).waitFor();
  const sessionId = await storedSessionId(customer);

  // An operator whose own name is a payload opens it straight from a link.
  const context = await browser.newContext();
  const { page, errors } = await consolePage(context);
  const fired = await watchForXss(page);
  const operatorToken = token('op-x', { name: `Eve ${IMG}`, roles: ['operator'] });
  await page.goto(`${gateway.url}/console#token=${operatorToken}&session=${sessionId}`);
  const said = page.locator('#transcript .msg[data-role="user"] .body');
  await said.waitFor();
  assert.equal(await said.textContent(), payload);
  // Its title (the start of the first message) comes from /v1/sessions/{id}.
  await page.locator('#conversation-title').filter({ hasText: 'Help' }).waitFor();
  assert.equal(await page.locator('#conversation-title').textContent(), payload);
  assert.equal(await page.locator('#who-name').textContent(), `Eve ${IMG} · default`);
  await page.locator('#transcript .msg[data-role="assistant"][data-state="completed"]').waitFor();
  assert.equal(await page.locator('#transcript img, #transcript script').count(), 0);
  assert.match(await readable(page.locator('#conversation-state')), /assistant answers/);

  // The operator answers with a payload too; the customer sees it as text.
  await page.locator('#reply').fill(`Hello ${SCRIPT}`);
  await page.locator('#reply').press('Enter');
  const answer = customer.locator(sel.operator);
  await answer.waitFor();
  assert.equal(await answer.locator('.author').textContent(), `Eve ${IMG} (operator)`);
  await page.locator('#transcript .msg[data-role="operator"]').filter({ hasText: `Hello ${SCRIPT}` }).waitFor();
  assert.equal(await page.locator('#transcript .msg[data-role="operator"] .author').textContent(), `Eve ${IMG} (you)`);

  assert.deepEqual(fired, []);
  assert.deepEqual(errors.filter((e) => !/inbox/i.test(e)), []);
  await context.close();
  await customerContext.close();
});

test('the console reconnects after its gateway restarts and goes on with the open conversation, each message once', async () => {
  const restarting = await Gateway.start(['--demo-seed', '--offline-agent-delay', '5ms', '--jwt-hs256-secret', SECRET, ...KEY_FLAGS], { name: 'console-restart' });
  try {
    const customerContext = await browser.newContext();
    const customer = await customerContext.newPage();
    const customerToken = token('rita');
    await customer.goto(
      host.page(
        '/console-restart',
        embedPage(restarting.url, {
          attributes: { 'storage-key': 'console-restart', 'token-provider': 'getChatToken' },
          beforeScript: `<script>window.getChatToken = async () => ${JSON.stringify(customerToken)};</script>`,
        }),
      ),
    );
    await customer.locator(sel.input).fill('First question about refunds');
    await customer.locator(sel.send).click();
    await customer.locator(`${sel.assistant}[data-state="completed"]`).waitFor();
    const sessionId = await storedSessionId(customer);

    const context = await browser.newContext();
    const { page } = await consolePage(context);
    await page.goto(`${restarting.url}/console#token=${token('op-dana', { name: 'Dana', roles: ['operator'] })}&session=${sessionId}`);
    const users = page.locator('#transcript .msg[data-role="user"]');
    await users.filter({ hasText: 'First question' }).waitFor();

    await restarting.terminate();
    await page.locator('#connection').filter({ hasText: 'Reconnecting' }).waitFor();
    assert.ok(await page.locator('#reply').isDisabled(), 'no reply box while disconnected');
    await restarting.start(restarting.port);
    await page.locator('#connection').filter({ hasText: 'Connected' }).waitFor({ timeout: 30_000 });

    await customer.waitForFunction(() => document.querySelector('switchboard-chat')?.status === 'online', null, { timeout: 30_000 });
    await customer.locator(sel.input).fill('Second question, after the restart');
    await customer.locator(sel.send).click();
    await users.filter({ hasText: 'Second question' }).waitFor();
    assert.deepEqual(await users.locator('.body').allTextContents(), ['First question about refunds', 'Second question, after the restart']);
    assert.ok(await page.locator('#reply').isEnabled());
    await context.close();
    await customerContext.close();
  } finally {
    restarting.kill();
  }
});
