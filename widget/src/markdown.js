// A small, safe Markdown renderer. Text from a model, an operator or a publisher may
// contain HTML (`<img onerror>`, `<script>`, `javascript:` links): it is never parsed as
// HTML. Every node is built with createElement / createTextNode, so markup in the
// text shows as the characters it is. Links keep only http(s) and mailto URLs.
//
// Supported: paragraphs, line breaks, # headings, - and 1. lists, > quotes, ``` code
// blocks, `code`, **bold**, *italic*, [text](url), <url> and bare http(s) URLs.

const SAFE_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

/** The URL if it is http(s) or mailto and absolute; otherwise null. */
export function safeUrl(href) {
  if (typeof href !== 'string') return null;
  // Browsers ignore control characters and whitespace inside a scheme
  // (`java\tscript:`); URL parsing does the same, so check what it parsed.
  let url;
  try {
    url = new URL(href.trim());
  } catch {
    return null;
  }
  return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
}

// Inline tokens, tried left to right: code span, bold, italic, [text](url), <url>,
// bare URL. `_` is not emphasis: identifiers like after_seq are common in answers.
const INLINE =
  /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)|\*\*(?=\S)([\s\S]*?\S)\*\*|\*(?=[^\s*])([\s\S]*?[^\s*])\*(?!\*)|\[([^\]\n]+)\]\(([^()\s]+)\)|<((?:https?|mailto):[^>\s]+)>|(https?:\/\/[^\s<>"]*[^\s<>".,;:!?)\]'])/;

function link(doc, href, label, fallbackText) {
  const safe = safeUrl(href);
  if (!safe) return doc.createTextNode(fallbackText);
  const a = doc.createElement('a');
  a.href = safe;
  a.target = '_blank';
  a.rel = 'noopener noreferrer nofollow';
  a.textContent = label;
  return a;
}

/** Append the inline Markdown of `text` to `parent`. */
function renderInline(doc, parent, text) {
  let rest = text;
  while (rest) {
    const match = INLINE.exec(rest);
    if (!match) {
      appendText(doc, parent, rest);
      return;
    }
    if (match.index > 0) appendText(doc, parent, rest.slice(0, match.index));
    const [whole, , code, bold, italic, linkText, linkHref, angleUrl, bareUrl] = match;
    if (code !== undefined) {
      const el = doc.createElement('code');
      el.textContent = code;
      parent.appendChild(el);
    } else if (bold !== undefined) {
      const el = doc.createElement('strong');
      renderInline(doc, el, bold);
      parent.appendChild(el);
    } else if (italic !== undefined) {
      const el = doc.createElement('em');
      renderInline(doc, el, italic);
      parent.appendChild(el);
    } else if (linkText !== undefined) {
      parent.appendChild(link(doc, linkHref, linkText, whole));
    } else if (angleUrl !== undefined) {
      parent.appendChild(link(doc, angleUrl, angleUrl, whole));
    } else if (bareUrl !== undefined) {
      parent.appendChild(link(doc, bareUrl, bareUrl, whole));
    }
    rest = rest.slice(match.index + whole.length);
  }
}

/** Text with its single newlines as <br>. */
function appendText(doc, parent, text) {
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (i > 0) parent.appendChild(doc.createElement('br'));
    if (line) parent.appendChild(doc.createTextNode(line));
  });
}

const FENCE = /^\s{0,3}(```|~~~)/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*)$/;
const BULLET = /^\s{0,3}[-*+]\s+(.*)$/;
const ORDERED = /^\s{0,3}(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^\s{0,3}>\s?(.*)$/;

/**
 * Render Markdown `text` as a DocumentFragment of safe nodes.
 * @param {string} text
 * @param {Document} [doc]
 */
export function renderMarkdown(text, doc = globalThis.document) {
  const fragment = doc.createDocumentFragment();
  const lines = String(text ?? '').replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  let paragraph = [];
  const flushParagraph = () => {
    if (!paragraph.length) return;
    const p = doc.createElement('p');
    renderInline(doc, p, paragraph.join('\n'));
    fragment.appendChild(p);
    paragraph = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      flushParagraph();
      i += 1;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      flushParagraph();
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) {
        body.push(lines[i]);
        i += 1;
      }
      i += 1; // the closing fence (or the end, while a reply still streams)
      const pre = doc.createElement('pre');
      const code = doc.createElement('code');
      code.textContent = body.join('\n');
      pre.appendChild(code);
      fragment.appendChild(pre);
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      flushParagraph();
      const p = doc.createElement('p');
      p.className = 'md-heading';
      const strong = doc.createElement('strong');
      renderInline(doc, strong, heading[2]);
      p.appendChild(strong);
      fragment.appendChild(p);
      i += 1;
      continue;
    }
    if (BULLET.test(line) || ORDERED.test(line)) {
      flushParagraph();
      const ordered = !BULLET.test(line);
      const pattern = ordered ? ORDERED : BULLET;
      const list = doc.createElement(ordered ? 'ol' : 'ul');
      if (ordered) {
        const start = Number(ORDERED.exec(line)[1]);
        if (start !== 1) list.start = start;
      }
      while (i < lines.length && pattern.test(lines[i])) {
        const match = pattern.exec(lines[i]);
        const li = doc.createElement('li');
        renderInline(doc, li, ordered ? match[2] : match[1]);
        list.appendChild(li);
        i += 1;
      }
      fragment.appendChild(list);
      continue;
    }
    if (QUOTE.test(line)) {
      flushParagraph();
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) {
        quoted.push(QUOTE.exec(lines[i])[1]);
        i += 1;
      }
      const blockquote = doc.createElement('blockquote');
      blockquote.appendChild(renderMarkdown(quoted.join('\n'), doc));
      fragment.appendChild(blockquote);
      continue;
    }
    paragraph.push(line);
    i += 1;
  }
  flushParagraph();
  return fragment;
}
