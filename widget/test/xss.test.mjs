// Text from a model, an operator and a publisher is shown, never executed. The widget
// is embedded cross-origin with Subresource Integrity, on a page whose own CSS is
// hostile, and every payload calls `xssFired(…)` if it ever runs.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  ADMIN_KEY,
  KEY_FLAGS,
  PUBLISHER_KEY,
  HostPages,
  api,
  embedPage,
  launchBrowser,
  screenshot,
  sel,
  storedSessionId,
  watchForXss,
} from './support/browser.mjs';
import { Gateway } from './support/processes.mjs';

let gateway;
let browser;
let host;

const IMG = `<img src=x onerror="xssFired('img')">`;
const SCRIPT = `<script>xssFired('script')</script>`;
const JS_LINK = `[claim your refund](javascript:xssFired('link'))`;
const SVG = `<svg onload="xssFired('svg')"></svg>`;

before(async () => {
  gateway = await Gateway.start(['--offline-agent-delay', '10ms', ...KEY_FLAGS], { name: 'xss' });
  browser = await launchBrowser();
  host = await HostPages.start();
  // A public document whose title, text and link are attacks: the offline agent quotes
  // the text and the title, and lists the document (title, uri) among the sources.
  const doc = await api(gateway.url, 'POST', '/v1/admin/documents', ADMIN_KEY, {
    doc_id: 'refunds',
    org_id: 'default',
    title: `Refund policy ${IMG}`,
    text: `Refunds take five days ${IMG} and ${SCRIPT} then ${JS_LINK} and ${SVG} done`,
    uri: `javascript:xssFired('source')`,
    acl: { public: true },
  });
  assert.equal(doc.status, 200, JSON.stringify(doc.body));
});

after(async () => {
  await browser?.close();
  await host?.close();
  gateway?.kill();
});

test('an XSS payload in a reply, an operator message and a publisher event is shown as text, never run', async () => {
  const hostileCss = `<style>
    * { color: #f0f !important; font-size: 40px !important; }
    div, button, textarea, p, section { display: none !important; visibility: hidden !important; }
    switchboard-chat { font-family: "Comic Sans MS" !important; line-height: 5 !important; }
  </style>`;
  const url = host.page('/xss', embedPage(gateway.url, { head: hostileCss, attributes: { 'chat-title': 'Shop help', 'storage-key': 'xss' } }));
  const context = await browser.newContext({ viewport: { width: 900, height: 900 } });
  const page = await context.newPage();
  const fired = await watchForXss(page);
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(url);
  await page.waitForFunction(() => document.querySelector('switchboard-chat')?.status === 'online');

  // The page's CSS does not reach inside: the message box is visible and usable.
  assert.ok(await page.locator(sel.input).isVisible(), 'the host page CSS cannot hide the widget');
  const fontSize = await page.locator(sel.input).evaluate((el) => getComputedStyle(el).fontSize);
  assert.notEqual(fontSize, '40px');

  // 1. A model reply quoting the payloads.
  await page.locator(sel.input).fill('What is the refund policy?');
  await page.locator(sel.send).click();
  const reply = page.locator(`${sel.assistant}[data-state="completed"]`);
  await reply.waitFor({ timeout: 20_000 });
  const replyText = await reply.locator('.body').textContent();
  assert.ok(replyText.includes(IMG), `the reply shows the img tag as text: ${replyText}`);
  assert.ok(replyText.includes(SCRIPT), 'the reply shows the script tag as text');
  assert.ok(replyText.includes(SVG), 'the reply shows the svg tag as text');
  assert.ok(replyText.includes('claim your refund'));
  assert.equal(await reply.locator('a').count(), 0, 'a javascript: link is not a link');
  // The source's title is text, and its javascript: uri is not a link either.
  const source = reply.locator('.sources li');
  assert.equal(await source.textContent(), `Refund policy ${IMG}`);
  assert.equal(await source.locator('a').count(), 0);

  const sessionId = await storedSessionId(page);
  assert.ok(sessionId);

  // 2. An operator message (human handoff), with the payload as author too.
  const operator = await api(gateway.url, 'POST', `/v1/sessions/${sessionId}/messages`, PUBLISHER_KEY, {
    text: `Hello, I can help. ${IMG} ${SCRIPT} [details](javascript:xssFired('operator-link'))`,
    author: `Dana ${IMG}`,
  });
  assert.equal(operator.status, 202, JSON.stringify(operator.body));
  const operatorBubble = page.locator(sel.operator);
  await operatorBubble.waitFor();
  assert.equal(await operatorBubble.locator('.author').textContent(), `Dana ${IMG} (operator)`);
  const operatorText = await operatorBubble.locator('.body').textContent();
  assert.ok(operatorText.includes(IMG) && operatorText.includes(SCRIPT), operatorText);
  assert.equal(await operatorBubble.locator('a').count(), 0);

  // 3. A publisher event into the session; the host page also receives it as a DOM event.
  await page.evaluate(() => {
    window.__events = [];
    document.querySelector('switchboard-chat').addEventListener('switchboard:event', (e) => window.__events.push(e.detail));
  });
  const published = await api(gateway.url, 'POST', '/v1/publish', PUBLISHER_KEY, {
    target: { session: sessionId },
    name: 'order.update',
    data: { text: `Your order shipped ${IMG} ${SCRIPT} <a href="javascript:xssFired('a')">track</a>`, order: 42 },
  });
  assert.equal(published.status, 202, JSON.stringify(published.body));
  const notice = page.locator(`${sel.notice}[data-kind="event"]`);
  await notice.waitFor();
  const noticeText = await notice.textContent();
  assert.ok(noticeText.includes(IMG) && noticeText.includes(SCRIPT) && noticeText.includes('<a href='), noticeText);
  const events = await page.evaluate(() => window.__events);
  assert.equal(events.length, 1);
  assert.equal(events[0].name, 'order.update');
  assert.equal(events[0].data.order, 42);
  assert.equal(events[0].publisher, 'backend');
  assert.equal(events[0].session_id, sessionId);

  // Click everything that looks like a link, then give any payload time to run.
  for (const text of ['claim your refund', 'details', 'track']) {
    await page.locator('switchboard-chat').getByText(text).first().click();
  }
  await page.waitForTimeout(500);

  // Nothing ran, and nothing the payloads name exists as an element.
  const injected = await page.evaluate(() => {
    const root = document.querySelector('switchboard-chat').shadowRoot;
    return {
      img: root.querySelectorAll('img').length,
      script: root.querySelectorAll('script').length,
      svgWithHandler: root.querySelectorAll('svg[onload]').length,
      unsafeLinks: [...root.querySelectorAll('a')].filter((a) => !/^(https?|mailto):/.test(a.href)).length,
      pageScripts: document.querySelectorAll('script').length,
    };
  });
  assert.deepEqual(injected, { img: 0, script: 0, svgWithHandler: 0, unsafeLinks: 0, pageScripts: 1 });
  assert.deepEqual(fired, [], 'no payload ran');
  assert.deepEqual(errors, []);
  assert.equal(page.url(), url, 'no link navigated away');

  await page.locator(sel.log).evaluate((log) => {
    log.scrollTop = 0;
  });
  await screenshot(page, 'xss-shown-as-text');
  await context.close();
});

test('a host page can take over an event with preventDefault', async () => {
  const url = host.page(
    '/events',
    embedPage(gateway.url, { attributes: { 'storage-key': 'events' } }),
  );
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForFunction(() => document.querySelector('switchboard-chat')?.status === 'online');
  await page.evaluate(() => {
    window.__events = [];
    document.addEventListener('switchboard:event', (e) => {
      window.__events.push(e.detail.name);
      if (e.detail.name === 'cart.updated') e.preventDefault();
    });
  });
  await page.locator(sel.input).fill('hello');
  await page.locator(sel.send).click();
  await page.locator(`${sel.assistant}[data-state="completed"]`).waitFor({ timeout: 20_000 });
  const sessionId = await storedSessionId(page);
  for (const name of ['cart.updated', 'promo']) {
    const r = await api(gateway.url, 'POST', '/v1/publish', PUBLISHER_KEY, {
      target: { session: sessionId },
      name,
      data: { text: `event ${name}` },
    });
    assert.equal(r.status, 202);
  }
  await page.waitForFunction(() => window.__events.length === 2);
  assert.deepEqual(await page.evaluate(() => window.__events), ['cart.updated', 'promo']);
  await page.locator(`${sel.notice}[data-kind="event"]`).waitFor();
  assert.deepEqual(await page.locator(`${sel.notice}[data-kind="event"]`).allTextContents(), ['event promo']);
  await context.close();
});
