// Generates dist/frames.d.ts, the TypeScript types of every wire frame, from the JSON
// Schemas in docs/schemas/ (themselves generated from the Rust protocol crate) with
// json-schema-to-typescript. Never edit dist/frames.d.ts by hand.
//
//   node scripts/generate.mjs          write dist/frames.d.ts
//   node scripts/generate.mjs --check  exit 1 when dist/frames.d.ts is not fresh
//
// The four schemas are merged into one document first, so their shared definitions
// (`Handoff`, `SessionState`, …) become one type each. Two rewrites keep the meaning the
// generator would otherwise lose:
// - a `$ref` with sibling keywords (JSON Schema 2020-12: both apply) becomes an `allOf`
//   of the two (the generator's draft-07 dereferencing would drop one side);
// - each variant of a `oneOf` of frames gets a title from its `type` constant, so every
//   frame has a named type (`SessionCreateFrame`, `TurnDeltaEvent`, …).
// A definition that differs between two files keeps its name in the first and is
// prefixed in the later one (`StoredSessionSummary` in event.json).

import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { compile } from 'json-schema-to-typescript';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const schemas = resolve(root, '../../docs/schemas');
const target = join(root, 'dist/frames.d.ts');

/** Each schema file, the name of its root type, and how its frame variants are named. */
const FILES = [
  { file: 'client-frame.json', name: 'ClientFrame', variant: (p) => `${p}Frame`, prefix: 'Client' },
  { file: 'server-frame.json', name: 'ServerFrame', variant: (p) => `${p}ServerFrame`, prefix: 'Server' },
  { file: 'event-frame.json', name: 'EventFrame', variant: (p) => `${p}Event`, prefix: 'Event' },
  { file: 'event.json', name: 'StoredEvent', variant: (p) => `Stored${p}Event`, prefix: 'Stored' },
  { file: 'error-code.json', name: 'ErrorCode', variant: null, prefix: '' },
];

/** `event` (a published event) would make `EventEvent`: it is `PublishedEvent`. */
const PASCAL_OVERRIDES = { event: 'Published' };

const pascal = (type) =>
  PASCAL_OVERRIDES[type] ??
  type
    .split(/[._-]/)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');

/** `$ref` plus siblings → `allOf: [{$ref}, {siblings}]`; refs renamed by `renames`. */
function rewrite(node, renames) {
  if (Array.isArray(node)) return node.map((item) => rewrite(item, renames));
  if (!node || typeof node !== 'object') return node;
  const out = {};
  for (const [key, value] of Object.entries(node)) out[key] = key === '$ref' ? value : rewrite(value, renames);
  if (typeof out.$ref === 'string') {
    const name = out.$ref.replace('#/$defs/', '');
    out.$ref = `#/$defs/${renames.get(name) ?? name}`;
    const { $ref, description, title, ...siblings } = out;
    if (Object.keys(siblings).length) {
      const merged = { allOf: [{ $ref }, siblings] };
      if (title) merged.title = title;
      if (description) merged.description = description;
      return merged;
    }
  }
  return out;
}

/** One document holding every frame type, ready for the generator. */
export async function mergedSchema() {
  const defs = {};
  const roots = {};
  for (const { file, name, variant, prefix } of FILES) {
    const schema = JSON.parse(await readFile(join(schemas, file), 'utf8'));
    const { $defs = {}, $schema, title, ...body } = schema;
    const renames = new Map();
    for (const [defName, def] of Object.entries($defs)) {
      if (defName in defs && !isDeepStrictEqual(defs[defName].original, def)) renames.set(defName, `${prefix}${defName}`);
    }
    for (const [defName, def] of Object.entries($defs)) {
      const finalName = renames.get(defName) ?? defName;
      if (!(finalName in defs)) defs[finalName] = { original: def, schema: rewrite(def, renames) };
    }
    if (variant && Array.isArray(body.oneOf)) {
      body.oneOf = body.oneOf.map((member) => {
        const type = member.properties?.type?.const;
        return type ? { ...member, title: variant(pascal(type)) } : member;
      });
    }
    let root = rewrite(body, renames);
    if (root.oneOf && root.properties) {
      // `ClientFrame = ClientFrameBody & ClientFrameEnvelope`: one of the frames, plus
      // the fields every frame may carry (`id`, `re`, `seq`…).
      const { oneOf, properties, required, allOf = [], type, ...rest } = root;
      const envelope = { title: `${name}Envelope`, type: 'object', properties };
      if (required) envelope.required = required;
      root = { ...rest, allOf: [...allOf, { title: `${name}Body`, oneOf }, envelope] };
    }
    roots[name] = { ...root, title: name, description: schema.description ?? title };
  }
  const $defs = {};
  for (const [defName, { schema }] of Object.entries(defs)) $defs[defName] = { ...schema, title: defName };
  Object.assign($defs, roots);
  return {
    title: 'SwitchboardFrames',
    description: 'Every wire type of docs/schemas/, by its role.',
    type: 'object',
    properties: Object.fromEntries(Object.keys(roots).map((name) => [name, { $ref: `#/$defs/${name}` }])),
    required: Object.keys(roots),
    additionalProperties: false,
    $defs,
  };
}

export async function generate() {
  const schema = await mergedSchema();
  return compile(schema, 'SwitchboardFrames', {
    bannerComment:
      '/* Generated by clients/js/scripts/generate.mjs (npm run generate) from docs/schemas/*.json\n   with json-schema-to-typescript. Do not edit: regenerate. */',
    additionalProperties: false,
    declareExternallyReferenced: true,
    enableConstEnums: false,
    strictIndexSignatures: true,
    unreachableDefinitions: true,
    format: true,
    cwd: schemas,
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const fresh = await generate();
  if (process.argv.includes('--check')) {
    const committed = await readFile(target, 'utf8').catch(() => '');
    if (committed !== fresh) {
      console.error('clients/js/dist/frames.d.ts is stale: run `npm run generate` in clients/js and commit it');
      process.exit(1);
    }
  } else {
    await writeFile(target, fresh);
  }
}
