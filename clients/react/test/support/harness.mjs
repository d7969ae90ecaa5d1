// What the hook's browser tests share: the test page (test/support/app.mjs bundled
// with React, react-dom and @switchboard/client by esbuild, in memory) served from
// 127.0.0.1, headless Chromium (Debian's package, driven by playwright-core), and real
// gateways started by the widget's test support (the binary `cargo test` built, or
// $SWITCHBOARD_BIN, on a free port, killed when the file's tests end).

import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { Gateway } from '../../../../widget/test/support/processes.mjs';
import { retainedEvents, until } from '../../../../widget/test/support/polling.mjs';

export { Gateway };
export { UpgradeBreakingProxy } from '../../../../widget/test/support/upgrade-proxy.mjs';

const here = dirname(fileURLToPath(import.meta.url));

export const ADMIN_KEY = 'adm_secret_0123456789abcdef';
export const JWT_SECRET = 'react-hook-test-secret-0123456789abcdef';
export const GATEWAY_FLAGS = ['--demo-seed', '--admin-keys', `ops:${ADMIN_KEY}`, '--jwt-hs256-secret', JWT_SECRET];

/** The test page's script: React in its development build, which reports misuse. */
async function bundle() {
  const result = await build({
    entryPoints: [join(here, 'app.mjs')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    write: false,
    logLevel: 'silent',
    define: { 'process.env.NODE_ENV': '"development"' },
  });
  return result.outputFiles[0].text;
}

const PAGE = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Chat</title><link rel="icon" href="data:,"></head><body><div id="root"></div><script type="module" src="/app.js"></script></body></html>';

/** Serve the page and its script on 127.0.0.1 (another origin than the gateway). */
async function servePage(script) {
  const server = createServer((request, response) => {
    const path = new URL(request.url, 'http://page').pathname;
    const [type, body] = path === '/' ? ['text/html', PAGE] : path === '/app.js' ? ['text/javascript', script] : [null, null];
    response.writeHead(type ? 200 : 404, { 'content-type': `${type || 'text/plain'}; charset=utf-8`, 'cache-control': 'no-store' });
    response.end(body ?? 'not found');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

/** Watches the page's DOM from its first moment: each status, and what each message showed. */
function recorder() {
  window.__messages = {};
  window.__statuses = [];
  new MutationObserver(() => {
    const chat = document.getElementById('chat');
    if (chat && window.__statuses.at(-1) !== chat.dataset.status) window.__statuses.push(chat.dataset.status);
    for (const li of document.querySelectorAll('.msg')) {
      const seen = (window.__messages[li.dataset.id] ||= []);
      const shown = { text: li.querySelector('.text').textContent, status: li.dataset.status };
      const last = seen.at(-1);
      if (!last || last.text !== shown.text || last.status !== shown.status) seen.push(shown);
    }
  }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
}

/**
 * Register the hooks of a test file: the browser and the page server before its
 * tests, and everything (gateways included) stopped after them. Returns the fixture:
 * `gateway(args)` starts a gateway, `open(gateway, options, {strict, prepare,
 * tokenFromPage})` a page with the chat mounted (`prepare(page)` runs before the page
 * loads; `tokenFromPage`: a JWT the page's token provider answers).
 */
export function fixture() {
  const fx = { browser: null, page: null, gateways: [], contexts: [] };
  before(async () => {
    const [browser, script] = await Promise.all([launchBrowser(), bundle()]);
    fx.browser = browser;
    fx.page = await servePage(script);
  });
  after(async () => {
    await fx.browser?.close();
    fx.page?.server.close();
    for (const gateway of fx.gateways) gateway.kill();
  });

  fx.gateway = async (args = [], name = 'react') => {
    const gateway = await Gateway.start([...GATEWAY_FLAGS, ...args], { name });
    fx.gateways.push(gateway);
    return gateway;
  };

  fx.open = async (gatewayUrl, options = {}, { strict = false, prepare = null, tokenFromPage = null } = {}) => {
    const context = await fx.browser.newContext();
    const page = await context.newPage();
    const chat = { page, context, sockets: [], sent: [], errors: [] };
    page.on('websocket', (ws) => {
      chat.sockets.push(ws);
      ws.on('framesent', ({ payload }) => chat.sent.push(JSON.parse(payload)));
    });
    page.on('pageerror', (error) => chat.errors.push(String(error)));
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') chat.errors.push(message.text());
    });
    await page.addInitScript(recorder);
    await prepare?.(page);
    await page.goto(fx.page.url);
    await page.evaluate(
      ([gateway, extra, asStrict, token]) => {
        window.chatToken = token;
        window.chatPage.mount({ gateway, ...extra }, { strict: asStrict, tokenFromPage: Boolean(token) });
      },
      [gatewayUrl, options, strict, tokenFromPage],
    );
    return chat;
  };
  return fx;
}

/** Type into the chat's box and press Send, as a user does. */
export async function ask(page, text) {
  await page.locator('#draft').fill(text);
  await page.locator('#send').click();
}

/** The assistant's entries in the transcript, and the user's. */
export const sel = {
  chat: (status) => `#chat[data-status="${status}"]`,
  assistant: '.msg[data-role="assistant"]',
  user: '.msg[data-role="user"]',
  operator: '.msg[data-role="operator"]',
};

/** Each `{text, status}` the message with this id showed, in order (the page's recorder). */
export function shownAs(page, id) {
  return page.evaluate((key) => window.__messages[key] || [], id);
}

export { until };

/** A session's retained events, as the gateway has them (admin key). */
export const history = (gateway, sessionId) => retainedEvents(gateway, sessionId, ADMIN_KEY);

/** An HS256 JWT of the default org (the test plays the customer's auth server). */
export function signJwt(claims) {
  const now = Math.floor(Date.now() / 1000);
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const head = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({ org_id: 'default', groups: [], iat: now, exp: now + 3600, ...claims })}`;
  return `${head}.${createHmac('sha256', JWT_SECRET).update(head).digest('base64url')}`;
}

/** A call to the gateway's HTTP API with a bearer credential; returns {status, body}. */
export async function api(gateway, method, path, bearer, body) {
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** The gateway's open WebSocket connections (its `switchboard_connections` gauge). */
export async function openConnections(gateway) {
  const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
  const line = metrics.split('\n').find((l) => l.startsWith('switchboard_connections '));
  if (!line) throw new Error('no switchboard_connections in /metrics');
  return Number(line.split(' ')[1]);
}
