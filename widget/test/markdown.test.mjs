// The safe Markdown renderer, in the browser: what it builds for ordinary Markdown,
// and that markup and unsafe URLs in the text come out as text.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BUNDLE, launchBrowser, watchForXss } from './support/browser.mjs';

let browser;
let page;
let fired;

before(async () => {
  browser = await launchBrowser();
  page = await browser.newPage();
  fired = await watchForXss(page);
  await page.setContent('<!doctype html><title>markdown</title><div id="out"></div>');
  await page.addScriptTag({ content: BUNDLE.toString('utf8') });
});

after(async () => {
  await browser?.close();
});

/** Render `text` into #out and return its HTML (which the browser serializes). */
function render(text) {
  return page.evaluate((t) => {
    const out = document.getElementById('out');
    out.replaceChildren(window.Switchboard.renderMarkdown(t));
    return out.innerHTML;
  }, text);
}

test('ordinary Markdown becomes the expected elements', async () => {
  assert.equal(await render('Hello **bold** and *it* and `x<y`'), '<p>Hello <strong>bold</strong> and <em>it</em> and <code>x&lt;y</code></p>');
  assert.equal(await render('one\ntwo\n\nthree'), '<p>one<br>two</p><p>three</p>');
  assert.equal(await render('- a\n- b\n\n1. c\n2. d'), '<ul><li>a</li><li>b</li></ul><ol><li>c</li><li>d</li></ol>');
  assert.equal(await render('```\n<b>code</b>\n```'), '<pre><code>&lt;b&gt;code&lt;/b&gt;</code></pre>');
  assert.equal(await render('# Title'), '<p class="md-heading"><strong>Title</strong></p>');
  assert.equal(await render('> quoted'), '<blockquote><p>quoted</p></blockquote>');
  assert.equal(
    await render('See [docs](https://example.com/a?b=1) or https://example.com/x.'),
    '<p>See <a href="https://example.com/a?b=1" target="_blank" rel="noopener noreferrer nofollow">docs</a> or <a href="https://example.com/x" target="_blank" rel="noopener noreferrer nofollow">https://example.com/x</a>.</p>',
  );
  assert.equal(await render('Ids like after_seq and client_message_id stay whole'), '<p>Ids like after_seq and client_message_id stay whole</p>');
});

test('markup and unsafe links in the text are shown as text', async () => {
  const attacks = [
    `<img src=x onerror="xssFired('img')">`,
    `<script>xssFired('script')</script>`,
    `<iframe src="javascript:xssFired('iframe')"></iframe>`,
    `[x](javascript:xssFired('link'))`,
    `[x](JaVaScRiPt:xssFired)`,
    `[x](java\tscript:xssFired)`,
    `[x](data:text/html,<script>xssFired('data')</script>)`,
    `[x](vbscript:msgbox)`,
    `<javascript:xssFired('angle')>`,
    `**<svg onload="xssFired('svg')">**`,
  ];
  for (const attack of attacks) {
    const html = await render(attack);
    const shown = await page.evaluate(() => document.getElementById('out').textContent);
    assert.equal(shown.replace(/\s/g, ''), attack.replace(/\*\*/g, '').replace(/\s/g, ''), `${attack} is shown as written`);
    assert.doesNotMatch(html, /<(img|script|iframe|svg)|href=/, `${attack} made no element or link: ${html}`);
  }
  await page.waitForTimeout(200);
  assert.deepEqual(fired, []);
});
