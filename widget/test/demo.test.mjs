// The demo page at `/`, as the gateway serves it out of the box: a question typed
// with the keyboard alone gets a streamed answer with its sources, under the page's
// strict Content-Security-Policy; the Stop button cancels a turn.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { KEY_FLAGS, history, launchBrowser, normalized, readable, recordFrames, screenshot, sel, storedSessionId } from './support/browser.mjs';
import { Gateway } from './support/processes.mjs';

let gateway;
let browser;

before(async () => {
  gateway = await Gateway.start(['--demo-seed', '--offline-agent-delay', '60ms', ...KEY_FLAGS], { name: 'demo' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  gateway?.kill();
});

/** Open the demo page and wait until its widget is online; CSP violations are kept. */
async function openDemo(context) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const frames = recordFrames(page);
  await page.goto(`${gateway.url}/`);
  await page.waitForFunction(() => document.querySelector('switchboard-chat')?.status === 'online');
  return { page, errors, frames };
}

/** The text of the widget's element that has focus (inside its shadow root). */
function focusedInWidget(page) {
  return page.evaluate(() => {
    const host = document.activeElement;
    if (host?.localName !== 'switchboard-chat') return null;
    const inner = host.shadowRoot.activeElement;
    return inner ? `${inner.localName}${inner.id ? `#${inner.id}` : ''}` : 'host';
  });
}

test('a question typed with the keyboard alone gets a streamed answer with its sources', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 860 } });
  const { page, errors, frames } = await openDemo(context);

  // Keyboard only: Tab until the message box has focus, type, press Enter.
  for (let i = 0; i < 12 && (await focusedInWidget(page)) !== 'textarea#sb-input'; i += 1) {
    await page.keyboard.press('Tab');
  }
  assert.equal(await focusedInWidget(page), 'textarea#sb-input', 'Tab reaches the message box');
  await page.keyboard.type('How does reconnecting and resuming work?');
  await page.keyboard.press('Enter');

  // While it streams, the reply grows in place and the Stop button is offered.
  const partial = await page.waitForFunction(() => {
    const root = document.querySelector('switchboard-chat').shadowRoot;
    const body = root.querySelector('.msg[data-state="streaming"] .body');
    return body && body.textContent.length > 0 ? body.textContent : null;
  });
  const partialText = await partial.jsonValue();
  assert.ok(await page.locator(sel.stop).isVisible(), 'Stop is shown while the answer streams');
  await screenshot(page, 'demo-streaming');

  const done = page.locator(`${sel.assistant}[data-state="completed"]`);
  await done.waitFor({ timeout: 20_000 });
  const finalText = await done.locator('.body').textContent();
  assert.ok(partialText.length < finalText.length, 'the answer was seen while incomplete');
  assert.ok(finalText.startsWith(partialText.slice(0, 15)), `"${finalText}" continues "${partialText}"`);
  assert.match(finalText, /after_seq/);
  assert.equal(await page.locator(sel.stop).isVisible(), false, 'Stop is gone once the answer ended');
  assert.equal(await page.locator(sel.assistant).count(), 1, 'one answer, shown once');
  assert.equal(await page.locator(sel.user).count(), 1);

  // Its sources, as links to the documents it drew on.
  const source = done.locator('.sources a', { hasText: 'Reconnecting and resuming' });
  assert.equal(await source.getAttribute('href'), 'https://switchboard.example/docs/resume');
  assert.equal(await source.getAttribute('rel'), 'noopener noreferrer nofollow');

  // The reply on screen is the reply in the gateway's history, streamed as several deltas.
  const sessionId = await storedSessionId(page);
  const events = await history(gateway.url, sessionId);
  const end = events.find((e) => e.type === 'turn.end');
  assert.equal(end.status, 'completed');
  assert.equal(await readable(done.locator('.body')), normalized(end.text));
  const deltas = frames.received.filter((f) => f.type === 'turn.delta');
  assert.ok(deltas.length >= 5, `the answer arrived in ${deltas.length} deltas`);

  // The screen reader hears the whole reply once, not token by token.
  await page.waitForFunction(() => {
    const live = document.querySelector('switchboard-chat').shadowRoot.querySelector('[aria-live="polite"]');
    return live.textContent.includes('after_seq');
  });
  assert.equal(await page.locator(sel.log).getAttribute('aria-live'), 'off');

  assert.equal(await focusedInWidget(page), 'textarea#sb-input', 'focus stays in the message box');
  assert.deepEqual(await page.evaluate(() => window.__csp), [], 'no Content-Security-Policy violation');
  assert.deepEqual(errors, []);
  await screenshot(page, 'demo-answer');
  await context.close();
});

test('Stop cancels the running answer', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 860 } });
  const { page, frames } = await openDemo(context);
  await page.locator(sel.input).fill('What happens on Kubernetes when a replica drains with SIGTERM?');
  await page.locator(sel.send).click();
  await page.locator('switchboard-chat .msg[data-state="streaming"] .body:not(:empty)').waitFor();
  await page.locator(sel.stop).click();

  const stopped = page.locator(`${sel.assistant}[data-state="cancelled"]`);
  await stopped.waitFor({ timeout: 10_000 });
  assert.match(await stopped.textContent(), /Stopped\./);
  const cancel = frames.sent.find((f) => f.type === 'turn.cancel');
  assert.ok(cancel, 'turn.cancel was sent');
  const end = frames.received.find((f) => f.type === 'turn.end');
  assert.equal(end.status, 'cancelled');
  assert.equal(end.turn_id, cancel.turn_id);
  assert.equal(await page.locator(sel.stop).isVisible(), false);
  await context.close();
});

test('default colours meet WCAG AA contrast, in the light and the dark theme', async () => {
  const context = await browser.newContext({ viewport: { width: 1200, height: 860 } });
  const { page } = await openDemo(context);
  await page.locator(sel.input).fill('What is Switchboard?');
  await page.keyboard.press('Enter');
  await page.locator(`${sel.assistant}[data-state="completed"]`).waitFor({ timeout: 20_000 });

  for (const theme of ['light', 'dark']) {
    await page.evaluate((t) => document.querySelector('switchboard-chat').setAttribute('theme', t), theme);
    const ratios = await page.evaluate(() => {
      const root = document.querySelector('switchboard-chat').shadowRoot;
      const parse = (c) => c.match(/[\d.]+/g).map(Number);
      const luminance = ([r, g, b]) => {
        const lin = (v) => {
          const s = v / 255;
          return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
        };
        return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
      };
      const background = (el) => {
        for (let node = el; node; node = node.parentElement || node.getRootNode().host) {
          const bg = getComputedStyle(node).backgroundColor;
          const parts = parse(bg);
          if (parts.length === 3 || parts[3] > 0) return parts.slice(0, 3);
        }
        return [255, 255, 255];
      };
      const ratio = (el) => {
        const fg = luminance(parse(getComputedStyle(el).color).slice(0, 3));
        const bg = luminance(background(el));
        return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
      };
      const pick = {
        title: 'header h2',
        user: '.msg[data-role="user"]',
        assistant: '.msg[data-role="assistant"]:not(.greeting) .body',
        source: '.sources a',
        send: 'button.send',
        input: 'textarea',
      };
      return Object.fromEntries(Object.entries(pick).map(([name, q]) => [name, ratio(root.querySelector(q))]));
    });
    for (const [name, value] of Object.entries(ratios)) {
      assert.ok(value >= 4.5, `${theme} theme: ${name} has contrast ${value.toFixed(2)}:1, below 4.5:1`);
    }
    await screenshot(page, `demo-theme-${theme}`);
  }
  await context.close();
});
