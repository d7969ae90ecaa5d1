// The committed bundle is what the sources build to, the gateway serves exactly it with
// caching headers and the integrity value pages pin, and it stays small.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { BUNDLE, INTEGRITY } from './support/browser.mjs';
import { Gateway, REPO } from './support/processes.mjs';

/** Largest acceptable gzipped bundle: one script tag should cost little. It carries
 * the HTTP fallback transport (SSE + REST, fallback.js) since it must work where
 * WebSocket upgrades are blocked, which a lazily loaded second file could not. */
const GZIP_BUDGET_BYTES = 21 * 1024;

let gateway;

before(async () => {
  gateway = await Gateway.start([], { name: 'bundle' });
});

after(() => gateway?.kill());

test('the committed bundle and demo page match a fresh build of the sources', async () => {
  const out = await mkdtemp(join(tmpdir(), 'widget-build-'));
  try {
    await promisify(execFile)(process.execPath, [join(REPO, 'widget/build.mjs'), '--out', out, '--quiet']);
    for (const file of ['widget.js', 'index.html']) {
      const fresh = await readFile(join(out, file));
      const committed = await readFile(join(REPO, 'widget/dist', file));
      assert.ok(fresh.equals(committed), `widget/dist/${file} is stale: run npm run build in widget/ and commit widget/dist/`);
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test('the bundle is small: its gzipped size is reported and within budget', () => {
  const gzipped = gzipSync(BUNDLE, { level: 9 }).length;
  console.log(`widget.js: ${BUNDLE.length} bytes, ${gzipped} bytes gzipped (budget ${GZIP_BUDGET_BYTES})`);
  assert.ok(gzipped <= GZIP_BUDGET_BYTES, `widget.js is ${gzipped} bytes gzipped, over the ${GZIP_BUDGET_BYTES} budget`);
});

test('GET /widget.js serves the bundle with caching, CORS and its integrity value; a revalidation is a 304', async () => {
  const response = await fetch(`${gateway.url}/widget.js`);
  assert.equal(response.status, 200);
  const body = Buffer.from(await response.arrayBuffer());
  assert.ok(body.equals(BUNDLE), 'the gateway serves widget/dist/widget.js byte for byte');
  assert.equal(response.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.match(response.headers.get('cache-control'), /^public, max-age=\d+/);
  assert.equal(response.headers.get('access-control-allow-origin'), '*');
  assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
  const sri = `sha384-${createHash('sha384').update(body).digest('base64')}`;
  assert.equal(response.headers.get('x-switchboard-integrity'), sri);
  assert.equal(sri, INTEGRITY);
  const etag = response.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]{32}"$/);

  const again = await fetch(`${gateway.url}/widget.js`, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
  assert.equal((await again.arrayBuffer()).byteLength, 0);

  const page = await fetch(`${gateway.url}/`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(page.headers.get('cache-control'), 'no-cache');
  const html = await page.text();
  assert.ok(html.includes(`<script src="/widget.js" integrity="${sri}" crossorigin="anonymous"`), 'the demo page pins the bundle it is served with');
});
