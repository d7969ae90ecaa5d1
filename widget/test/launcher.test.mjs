// The floating launcher layout, driven by the keyboard alone: Tab to the button, Enter
// opens the panel with focus in the message box, Escape closes it and focus returns.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HostPages, embedPage, launchBrowser, screenshot, sel } from './support/browser.mjs';
import { Gateway } from './support/processes.mjs';

let gateway;
let browser;
let host;

before(async () => {
  gateway = await Gateway.start(['--demo-seed', '--offline-agent-delay', '10ms'], { name: 'launcher' });
  browser = await launchBrowser();
  host = await HostPages.start();
});

after(async () => {
  await browser?.close();
  await host?.close();
  gateway?.kill();
});

function focused(page) {
  return page.evaluate(() => {
    const host = document.activeElement;
    if (host?.localName !== 'switchboard-chat') return host?.id || host?.localName || null;
    const inner = host.shadowRoot.activeElement;
    return inner ? inner.className || inner.localName : 'host';
  });
}

test('the launcher opens and closes with the keyboard, moving focus sensibly', async () => {
  const url = host.page(
    '/launcher',
    embedPage(gateway.url, {
      body: '<p><a id="before" href="#">A link on the page</a></p>',
      attributes: { layout: 'launcher', 'chat-title': 'Help', theme: 'dark', 'storage-key': 'launcher', style: '--sb-accent: #6b2fbf' },
    }),
  );
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForFunction(() => document.querySelector('switchboard-chat')?.status === 'online');

  const launcher = page.locator(sel.launcher);
  assert.equal(await launcher.getAttribute('aria-expanded'), 'false');
  assert.equal(await launcher.getAttribute('aria-label'), 'Open chat: Help');
  assert.equal(await page.locator(sel.input).isVisible(), false, 'closed at first');

  await page.keyboard.press('Tab'); // the page's link
  assert.equal(await focused(page), 'before');
  await page.keyboard.press('Tab');
  assert.equal(await focused(page), 'launcher');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('switchboard-chat').shadowRoot.activeElement?.id === 'sb-input');
  assert.equal(await launcher.getAttribute('aria-expanded'), 'true');
  assert.equal(await page.locator('switchboard-chat .panel').getAttribute('role'), 'dialog');

  await page.keyboard.type('What is Switchboard?');
  await page.keyboard.press('Enter');
  await page.locator(`${sel.assistant}[data-state="completed"]`).waitFor({ timeout: 20_000 });
  // The theme's custom property reached inside the shadow root.
  const accent = await page.locator('switchboard-chat header').evaluate((el) => getComputedStyle(el).backgroundColor);
  assert.equal(accent, 'rgb(107, 47, 191)');
  await screenshot(page, 'launcher-open-dark');

  await page.keyboard.press('Escape');
  assert.equal(await page.locator(sel.input).isVisible(), false);
  assert.equal(await focused(page), 'launcher', 'focus returns to the launcher');
  assert.equal(await launcher.getAttribute('aria-expanded'), 'false');

  // Shift+Enter is a new line, not a send.
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector('switchboard-chat').shadowRoot.activeElement?.id === 'sb-input');
  await page.keyboard.type('line one');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('line two');
  assert.equal(await page.locator(sel.input).inputValue(), 'line one\nline two');
  assert.equal(await page.locator(sel.user).count(), 1);
  await context.close();
});
