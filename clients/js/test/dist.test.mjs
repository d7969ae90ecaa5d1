// The committed dist/ is what the build and the generator make now: dist/index.js from
// the widget's client sources, dist/frames.d.ts from docs/schemas/.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';

import { build } from '../scripts/build.mjs';
import { generate } from '../scripts/generate.mjs';

const committed = (path) => readFile(new URL(`../${path}`, import.meta.url), 'utf8');

test('dist/index.js is a fresh build of widget/src/client.js and fallback.js (npm run build)', async () => {
  assert.ok((await committed('dist/index.js')) === (await build()), 'stale: run `npm run build` in clients/js');
});

test('dist/frames.d.ts is a fresh generation from docs/schemas (npm run generate)', async () => {
  assert.ok((await committed('dist/frames.d.ts')) === (await generate()), 'stale: run `npm run generate` in clients/js');
});

test('the package entry exports the client and its helpers', async () => {
  const entry = await import('@switchboard/client');
  for (const name of ['SwitchboardClient', 'CloseCodes', 'backoffDelay', 'websocketUrl', 'httpFallbackSocket']) {
    assert.ok(name in entry, name);
  }
  const publisher = await import('@switchboard/client/publisher');
  for (const name of ['publish', 'chat', 'createSession', 'createPublisher', 'SwitchboardApiError']) assert.ok(name in publisher, name);
});
