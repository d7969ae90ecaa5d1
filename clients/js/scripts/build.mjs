// Builds dist/index.js: the widget's own client (widget/src/client.js and the HTTP
// fallback transport it uses, widget/src/fallback.js) bundled into one ES module. The
// package does not fork the client: the widget keeps using those sources, and this
// file is their build. dist/ is committed; the tests check it matches a fresh build.
//
//   node scripts/build.mjs          write dist/index.js
//   node scripts/build.mjs --check  exit 1 when dist/index.js is not a fresh build

import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const widgetSrc = resolve(root, '../../widget/src');
const target = join(root, 'dist/index.js');

/** The bundle's text, built in memory. */
export async function build() {
  const { version } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
  const result = await esbuild.build({
    stdin: {
      contents: "export * from './client.js';\nexport * from './fallback.js';\n",
      resolveDir: widgetSrc,
      sourcefile: 'index.js',
      loader: 'js',
    },
    absWorkingDir: root,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: ['es2022'],
    minify: false,
    legalComments: 'inline',
    banner: {
      js: `// @switchboard/client ${version}: built from widget/src/client.js and widget/src/fallback.js\n// by clients/js/scripts/build.mjs (npm run build). Do not edit: edit the widget's sources.`,
    },
    write: false,
    logLevel: 'warning',
  });
  // esbuild names the stdin module by its absolute directory in comments: keep
  // the output the same on every machine.
  return result.outputFiles[0].text.replaceAll(widgetSrc, 'widget/src');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const fresh = await build();
  if (process.argv.includes('--check')) {
    const committed = await readFile(target, 'utf8').catch(() => '');
    if (committed !== fresh) {
      console.error('clients/js/dist/index.js is stale: run `npm run build` in clients/js and commit it');
      process.exit(1);
    }
  } else {
    await writeFile(target, fresh);
  }
}
