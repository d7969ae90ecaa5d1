// Property tests (fast-check) of the safe Markdown renderer, in the browser: whatever
// the text — Markdown, HTML, attack fragments, arbitrary Unicode — the rendered nodes
// are only the renderer's own elements with their own attributes, every link is
// http(s) or mailto, and no script runs (test/support/markdown-properties.mjs).
//
// FAST_CHECK_RUNS sets the inputs per property (default 5000); a failure prints the
// seed, and FAST_CHECK_SEED=<seed> replays it.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { build } from 'esbuild';
import fc from 'fast-check';
import { safeUrl } from '../src/markdown.js';
import { BUNDLE, launchBrowser, watchForXss } from './support/browser.mjs';
import { URLS } from './support/markdown-properties.mjs';
import { REPO } from './support/processes.mjs';

const RUNS = Number(process.env.FAST_CHECK_RUNS) || 5000;
const SEED = Number(process.env.FAST_CHECK_SEED) || Math.floor(Math.random() * 2 ** 31);
const SAFE_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

let browser;
let page;
let fired;

before(async () => {
  // The properties run inside the page, with fast-check bundled beside them.
  const harness = await build({
    entryPoints: [join(REPO, 'widget/test/support/markdown-properties.mjs')],
    bundle: true,
    format: 'iife',
    write: false,
    logLevel: 'error',
  });
  browser = await launchBrowser();
  page = await browser.newPage();
  fired = await watchForXss(page);
  await page.setContent('<!doctype html><title>markdown properties</title><div id="out"></div>');
  await page.addScriptTag({ content: BUNDLE.toString('utf8') });
  await page.addScriptTag({ content: harness.outputFiles[0].text });
});

after(async () => {
  await browser?.close();
});

test('no input renders an element, attribute or link outside the allowlist, and none runs', async () => {
  const results = await page.evaluate(
    (options) =>
      window.runMarkdownProperties(window.Switchboard.renderMarkdown, document.getElementById('out'), options),
    { runs: RUNS, seed: SEED },
  );
  assert.equal(results.length, 2);
  for (const result of results) {
    assert.equal(
      result.failed,
      false,
      `${result.name}: ${result.error}\ncounterexample ${JSON.stringify(result.counterexample)}, FAST_CHECK_SEED=${result.seed}`,
    );
    assert.equal(result.numRuns, RUNS, `${result.name} ran every input`);
  }
  await page.waitForTimeout(200);
  assert.deepEqual(fired, [], 'no payload ran');
});

test('safeUrl answers null or the absolute http(s) or mailto URL it parsed, for any string', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom(...URLS)), (href) => {
      const safe = safeUrl(href);
      if (safe === null) return;
      assert.ok(SAFE_PROTOCOLS.has(new URL(safe).protocol), `${JSON.stringify(href)} gave ${safe}`);
      assert.equal(safe, new URL(href.trim()).href);
    }),
    { numRuns: RUNS * 4, seed: SEED },
  );
});
