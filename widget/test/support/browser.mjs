// Headless Chromium (Debian's package) driven by playwright-core, a host page server on
// another origin (so the widget is embedded the way customers embed it: cross-origin,
// with Subresource Integrity), and small helpers the tests share.

import { createHash, createHmac } from 'node:crypto';
import { copyFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { ARTIFACTS, REPO } from './processes.mjs';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** Launch Chromium without any network traffic of its own (the sandbox has none). */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/** The bundle the gateway embeds, and its integrity value. */
export const BUNDLE = readFileSync(join(REPO, 'widget/dist/widget.js'));
export const INTEGRITY = `sha384-${createHash('sha384').update(BUNDLE).digest('base64')}`;

/**
 * An HTTP server on 127.0.0.1 (another origin than the gateway) serving pages the
 * tests register: `host.page('/x', html)` then `host.url('/x')`.
 */
export class HostPages {
  static async start() {
    const host = new HostPages();
    host.pages = new Map();
    host.server = createServer((request, response) => {
      const path = new URL(request.url, 'http://host').pathname;
      const body = host.pages.get(path);
      if (body === undefined) {
        response.writeHead(404, { 'content-type': 'text/plain' });
        response.end('not found');
        return;
      }
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      response.end(body);
    });
    await new Promise((resolve) => host.server.listen(0, '127.0.0.1', resolve));
    host.port = host.server.address().port;
    return host;
  }

  page(path, html) {
    this.pages.set(path, html);
    return this.url(path);
  }

  url(path) {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  close() {
    return new Promise((resolve) => this.server.close(resolve));
  }
}

/**
 * A customer's page embedding the widget from `gateway` with one script tag and
 * Subresource Integrity. `attributes` go on <switchboard-chat>; `head` is extra markup.
 */
export function embedPage(gateway, { attributes = {}, head = '', body = '', beforeScript = '' } = {}) {
  const attrs = Object.entries(attributes)
    .map(([name, value]) => (value === true ? name : `${name}="${String(value).replace(/"/g, '&quot;')}"`))
    .join(' ');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title>${head}</head>
<body>
<h1>An online shop</h1>
${body}
<switchboard-chat ${attrs}></switchboard-chat>
${beforeScript}
<script src="${gateway}/widget.js" integrity="${INTEGRITY}" crossorigin="anonymous"></script>
</body></html>`;
}

/** Save a screenshot under target/browser-artifacts/ and return its path. */
export async function screenshot(target, name) {
  const path = join(ARTIFACTS, `${name}.png`);
  await target.screenshot({ path });
  return path;
}

/**
 * A screenshot docs/ shows: saved like `screenshot`, and copied to docs/img/ when the
 * run sets UPDATE_DOCS_IMAGES=1 (so an ordinary run leaves the tree clean).
 */
export async function docsScreenshot(target, name) {
  const path = await screenshot(target, name);
  if (process.env.UPDATE_DOCS_IMAGES === '1') copyFileSync(path, join(REPO, 'docs/img', `${name}.png`));
  return path;
}

/** Record every frame the page's WebSockets send and receive, parsed. */
export function recordFrames(page) {
  const frames = { sent: [], received: [] };
  page.on('websocket', (ws) => {
    ws.on('framesent', (frame) => {
      try {
        frames.sent.push(JSON.parse(frame.payload));
      } catch {
        // not JSON: not ours
      }
    });
    ws.on('framereceived', (frame) => {
      try {
        frames.received.push(JSON.parse(frame.payload));
      } catch {
        // not JSON
      }
    });
  });
  return frames;
}

/**
 * Listen for injected script running: payloads call `xssFired(where)`, and any
 * `alert`/`confirm`/`prompt` counts too. Returns the list of what fired.
 */
export async function watchForXss(page) {
  const fired = [];
  await page.exposeFunction('xssFired', (where) => {
    fired.push(String(where));
  });
  page.on('dialog', (dialog) => {
    fired.push(`dialog:${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  return fired;
}

/** Collect status changes of the first <switchboard-chat> from page load on. */
export async function recordStatuses(page) {
  await page.addInitScript(() => {
    window.__statuses = [];
    document.addEventListener('switchboard:status', (event) => window.__statuses.push(event.detail.state));
  });
}

/** An HS256 JWT signed in Node (the test plays the customer's auth server). */
export function signJwt(secret, claims) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const head = encode({ alg: 'HS256', typ: 'JWT' });
  const body = encode(claims);
  const signature = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${signature}`;
}

/** POST JSON to the gateway's HTTP API with a bearer key; returns {status, body}. */
export async function api(gateway, method, path, key, body) {
  const response = await fetch(`${gateway}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: response.status, body: json };
}

export const PUBLISHER_KEY = 'pub_secret_0123456789abcdef';
export const ADMIN_KEY = 'adm_secret_0123456789abcdef';
export const KEY_FLAGS = ['--publisher-keys', `backend:${PUBLISHER_KEY}`, '--admin-keys', `ops:${ADMIN_KEY}`];

/** The retained history of a session, as the gateway has it. */
export async function history(gateway, sessionId) {
  const { status, body } = await api(gateway, 'GET', `/v1/sessions/${sessionId}/events`, ADMIN_KEY);
  if (status !== 200) throw new Error(`history of ${sessionId}: ${status} ${JSON.stringify(body)}`);
  return body.events;
}

/** Text as a person reads it (paragraph breaks and all), whitespace runs as one space. */
export async function readable(locator) {
  return (await locator.innerText()).replace(/\s+/g, ' ').trim();
}

/** The same normalization for a text from the gateway's history. */
export function normalized(text) {
  return text.replace(/\s+/g, ' ').trim();
}

/** Playwright locators pierce open shadow roots: these find the widget's parts. */
export const sel = {
  input: 'switchboard-chat textarea',
  send: 'switchboard-chat button.send',
  stop: 'switchboard-chat button.stop',
  banner: 'switchboard-chat .banner',
  log: 'switchboard-chat .log',
  assistant: 'switchboard-chat .msg[data-role="assistant"]:not(.greeting)',
  user: 'switchboard-chat .msg[data-role="user"]',
  operator: 'switchboard-chat .msg[data-role="operator"]',
  notice: 'switchboard-chat .notice',
  sources: 'switchboard-chat .sources',
  launcher: 'switchboard-chat button.launcher',
};

/** The widget's stored session id on this page (from localStorage). */
export async function storedSessionId(page) {
  return page.evaluate(() => {
    for (let i = 0; i < localStorage.length; i += 1) {
      const key = localStorage.key(i);
      if (key.startsWith('switchboard:v1:')) return JSON.parse(localStorage.getItem(key)).session_id;
    }
    return null;
  });
}
