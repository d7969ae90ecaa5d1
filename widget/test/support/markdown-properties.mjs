// The Markdown renderer's properties, run inside the browser page (bundled with
// fast-check by markdown-property.test.mjs): thousands of renders cost a few
// seconds there, where one round trip per render would cost minutes.

import fc from 'fast-check';

const SAFE_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

/** Each element the renderer makes, and the attributes (with values) it may carry. */
const ALLOWED = {
  P: { class: (v) => v === 'md-heading' },
  BR: {},
  STRONG: {},
  EM: {},
  CODE: {},
  PRE: {},
  UL: {},
  OL: { start: (v) => /^-?\d+$/.test(v) },
  LI: {},
  BLOCKQUOTE: {},
  A: {
    href: (v) => SAFE_PROTOCOLS.has(new URL(v).protocol),
    target: (v) => v === '_blank',
    rel: (v) => v === 'noopener noreferrer nofollow',
  },
};

// Pieces that steer the renderer into each of its branches, and the payloads of known
// attacks; the generator strings them together with arbitrary text.
const MARKDOWN = [
  '**', '*', '`', '``', '```', '~~~', '[', ']', '(', ')', '](', '<', '>', '# ', '###### ',
  '- ', '* ', '+ ', '1. ', '0) ', '999999999. ', '> ', '>> ', '\n', '\n\n', '\r\n', '\r', ' ',
  '   ', '\t', '_', '\\', '"', "'", '&', '&lt;', '&#x3C;', ':', '/', '//', '.', ',', '!', '?',
];
export const URLS = [
  'http://', 'https://', 'mailto:', 'https://example.com/a?b=1&c=<d>', 'http://x', 'mailto:a@b',
  'javascript:', 'JaVaScRiPt:', 'java\tscript:', 'java\nscript:', ' javascript:', '\u0001javascript:',
  'jav&#x09;ascript:', 'data:text/html,', 'vbscript:', 'file:///etc/passwd', '//evil.example',
  'https:evil', 'http:\\\\evil', 'xssFired(1)',
];
const HTML = [
  '<script>xssFired("script")</script>', '<img src=x onerror="xssFired(\'img\')">',
  '<svg onload="xssFired(\'svg\')">', '<a href="javascript:xssFired(\'a\')">x</a>',
  '<iframe src="javascript:xssFired(\'iframe\')">', '<style>*{}</style>', '<p class="x" onclick=y>',
  '</p>', '<!--', '-->', '<![CDATA[', '<math><mtext><table><mglyph><style><img src=x onerror=xssFired(1)>',
  'onerror=', 'style=', 'href=', '"><img src=x onerror=xssFired(2)>',
];

const piece = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...MARKDOWN) },
  { weight: 2, arbitrary: fc.constantFrom(...URLS) },
  { weight: 2, arbitrary: fc.constantFrom(...HTML) },
  { weight: 2, arbitrary: fc.string({ maxLength: 8 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 4 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 4 }) },
);
const markdownText = fc.array(piece, { maxLength: 40 }).map((pieces) => pieces.join(''));
const url = fc.tuple(fc.constantFrom(...URLS), fc.string({ maxLength: 12 })).map(([a, b]) => a + b);

/** Why the elements under `root` break the allowlist, or null. */
export function violation(root) {
  for (const el of root.querySelectorAll('*')) {
    const tag = el.tagName.toLowerCase();
    const allowed = ALLOWED[el.tagName];
    if (!allowed) return `element <${tag}>`;
    for (const { name, value } of el.attributes) {
      const check = allowed[name];
      if (!check) return `attribute ${name}="${value}" on <${tag}>`;
      let ok;
      try {
        ok = check(value);
      } catch {
        ok = false;
      }
      if (!ok) return `value ${name}="${value}" on <${tag}>`;
      // The scheme as a browser reads it (it skips whitespace and control characters).
      if (/^javascript:/i.test(value.replace(/[\s\u0000-\u001f]/g, ''))) return `javascript: URL in ${name}`;
    }
  }
  return null;
}

/** Render `text` into `out`; throw naming the first element outside the allowlist. */
function renderChecked(renderMarkdown, out, text) {
  out.replaceChildren(renderMarkdown(text));
  const problem = violation(out);
  if (problem) throw new Error(`${JSON.stringify(text)} rendered ${problem}`);
}

/**
 * Run the properties against `renderMarkdown` rendering into `out`; the result of each
 * (fast-check's `check`) as plain data for the test to assert on.
 */
export function runMarkdownProperties(renderMarkdown, out, { runs, seed }) {
  const report = (name, details) => ({
    name,
    failed: details.failed,
    numRuns: details.numRuns,
    seed: details.seed,
    counterexample: details.counterexample,
    error: details.errorInstance ? String(details.errorInstance.message ?? details.errorInstance) : null,
  });
  const options = { numRuns: runs, seed };
  return [
    report(
      'any text renders only allowed elements and attributes',
      fc.check(
        fc.property(markdownText, (text) => renderChecked(renderMarkdown, out, text)),
        options,
      ),
    ),
    report(
      'links in every syntax are only http(s) or mailto',
      fc.check(
        fc.property(url, fc.string({ maxLength: 8 }), (href, label) =>
          renderChecked(renderMarkdown, out, `[${label}](${href}) <${href}> ${href}\n- ${href}\n> [${label}](${href})`),
        ),
        options,
      ),
    ),
  ];
}

globalThis.runMarkdownProperties = runMarkdownProperties;
