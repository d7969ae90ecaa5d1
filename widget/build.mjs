// Builds the one-file widget bundle (dist/widget.js) and the demo page (dist/index.html)
// that the gateway embeds and serves at /widget.js and /. Both are committed: cargo
// embeds them, so building the gateway needs no JavaScript toolchain. The browser
// suite checks that the committed files match a fresh build of the sources.
//
//   node build.mjs            build into dist/
//   node build.mjs --out DIR  build into DIR (used by the freshness check)

import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const outFlag = process.argv.indexOf('--out');
const outDir = outFlag > 0 ? process.argv[outFlag + 1] : join(here, 'dist');
const quiet = process.argv.includes('--quiet');

const { version } = JSON.parse(await readFile(join(here, 'package.json'), 'utf8'));

const result = await esbuild.build({
  entryPoints: [join(here, 'src/index.js')],
  bundle: true,
  format: 'iife',
  minify: true,
  target: ['es2022'],
  legalComments: 'none',
  banner: { js: `/*! Switchboard widget ${version} */` },
  write: false,
  logLevel: 'warning',
});
const bundle = Buffer.from(result.outputFiles[0].contents);

/** The Subresource Integrity value of some bytes, for `<script integrity>`. */
export function integrity(bytes) {
  return `sha384-${createHash('sha384').update(bytes).digest('base64')}`;
}

// The demo page runs under a strict Content-Security-Policy (no inline script, no
// 'unsafe-inline' style), which is also the proof that the widget needs neither. Its own
// <style> is allowed by hash.
const template = await readFile(join(here, 'demo/index.html'), 'utf8');
const style = /<style>([\s\S]*?)<\/style>/.exec(template)?.[1] ?? '';
const styleHash = `sha256-${createHash('sha256').update(style).digest('base64')}`;
const page = template
  .replaceAll('%%WIDGET_INTEGRITY%%', integrity(bundle))
  .replaceAll('%%STYLE_HASH%%', styleHash)
  .replaceAll('%%VERSION%%', version);

await mkdir(outDir, { recursive: true });
await writeFile(join(outDir, 'widget.js'), bundle);
await writeFile(join(outDir, 'index.html'), page);
if (!quiet) {
  console.log(`dist/widget.js: ${bundle.length} bytes, ${gzipSync(bundle, { level: 9 }).length} bytes gzipped`);
  console.log(`integrity: ${integrity(bundle)}`);
}
