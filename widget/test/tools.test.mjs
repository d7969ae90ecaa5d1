// A tool approval prompt answered by a click. The model is a fake OpenAI-compatible
// upstream (a tiny Node server speaking chat-completions SSE): it asks for the
// `refund_order` tool first, and answers in text once the tool result is in the prompt.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { HostPages, embedPage, launchBrowser, recordFrames, screenshot, sel } from './support/browser.mjs';
import { Gateway } from './support/processes.mjs';

let upstream;
let upstreamUrl;
const chatRequests = [];
const toolCalls = [];
let gateway;
let browser;
let host;
let dir;

const FINAL_ANSWER = 'Done: order **42** was refunded.';

function sse(response, chunks) {
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  for (const chunk of chunks) response.write(`data: ${JSON.stringify(chunk)}\n\n`);
  response.end('data: [DONE]\n\n');
}

function choice(delta, finishReason = null) {
  return { id: 'chatcmpl-1', object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finishReason }] };
}

async function readJson(request) {
  let body = '';
  for await (const chunk of request) body += chunk;
  return JSON.parse(body || 'null');
}

before(async () => {
  upstream = createServer(async (request, response) => {
    const body = await readJson(request);
    if (request.url === '/v1/chat/completions') {
      chatRequests.push(body);
      const hasToolResult = body.messages.some((m) => m.role === 'tool');
      if (!hasToolResult) {
        sse(response, [
          choice({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: 'call_refund_1', type: 'function', function: { name: 'refund_order', arguments: '' } }] }),
          choice({ tool_calls: [{ index: 0, function: { arguments: '{"order_id":' } }] }),
          choice({ tool_calls: [{ index: 0, function: { arguments: ' 42}' } }] }),
          choice({}, 'tool_calls'),
        ]);
      } else {
        const words = FINAL_ANSWER.split(/(?<= )/);
        sse(response, [...words.map((w) => choice({ content: w })), choice({}, 'stop')]);
      }
      return;
    }
    if (request.url === '/tools/refund') {
      toolCalls.push(body);
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ refunded: true, order_id: 42 }));
      return;
    }
    response.writeHead(404);
    response.end();
  });
  await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${upstream.address().port}`;

  dir = await mkdtemp(join(tmpdir(), 'widget-tools-'));
  const toolsFile = join(dir, 'tools.json');
  await writeFile(
    toolsFile,
    JSON.stringify([
      {
        name: 'refund_order',
        description: 'Refund an order in full.',
        parameters: { type: 'object', properties: { order_id: { type: 'integer' } }, required: ['order_id'] },
        endpoint: `${upstreamUrl}/tools/refund`,
        requires_approval: true,
      },
    ]),
  );
  gateway = await Gateway.start(
    [
      '--model-provider', 'openai',
      '--model-base-url', `${upstreamUrl}/v1`,
      '--model', 'fake-model',
      '--model-api-key', 'sk-test-0123456789',
      '--tools-file', toolsFile,
      '--tool-signing-key', 'tool-signing-key-0123456789abcdef0123456789',
    ],
    { name: 'tools' },
  );
  browser = await launchBrowser();
  host = await HostPages.start();
});

after(async () => {
  await browser?.close();
  await host?.close();
  gateway?.kill();
  await new Promise((resolve) => (upstream ? upstream.close(resolve) : resolve()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('a tool approval prompt is answered by a click, and the answer goes on', async () => {
  const url = host.page('/tools', embedPage(gateway.url, { attributes: { 'storage-key': 'tools', 'chat-title': 'Shop help' } }));
  const context = await browser.newContext({ viewport: { width: 800, height: 820 } });
  const page = await context.newPage();
  const frames = recordFrames(page);
  await page.goto(url);
  await page.waitForFunction(() => document.querySelector('switchboard-chat')?.status === 'online');

  await page.locator(sel.input).fill('Please refund my order 42');
  await page.locator(sel.send).click();

  const card = page.locator('switchboard-chat .tool');
  await card.waitFor({ timeout: 20_000 });
  assert.match(await card.locator('h3').textContent(), /refund_order/);
  assert.deepEqual(JSON.parse(await card.locator('pre').textContent()), { order_id: 42 });
  assert.equal(toolCalls.length, 0, 'nothing happens before the decision');
  await screenshot(page, 'tool-approval-prompt');

  await card.getByRole('button', { name: 'Approve' }).click();

  const done = page.locator(`${sel.assistant}[data-state="completed"]`);
  await done.waitFor({ timeout: 20_000 });
  const request = frames.received.find((f) => f.type === 'tool.request');
  assert.equal(request.tool, 'refund_order');
  assert.equal(await card.getAttribute('data-call-id'), request.call_id);
  const decide = frames.sent.find((f) => f.type === 'tool.decide');
  assert.deepEqual({ call_id: decide.call_id, approved: decide.approved }, { call_id: request.call_id, approved: true });
  assert.ok(frames.received.some((f) => f.type === 'tool.decided' && f.approved === true));
  const result = frames.received.find((f) => f.type === 'tool.result');
  assert.equal(result.ok, true);
  assert.equal(toolCalls.length, 1, 'the tool endpoint was called once');
  assert.equal(await card.getByRole('button').count(), 0, 'the buttons are gone after the decision');
  assert.match(await card.locator('.state').textContent(), /Approved/);
  assert.equal(await done.locator('.body').last().textContent(), 'Done: order 42 was refunded.');
  assert.equal(await done.locator('.body').first().textContent(), '', 'the model said nothing before the tool');
  assert.equal(await done.locator('.body strong').textContent(), '42');
  // The answer reads below the card: what the model said after the tool ran.
  assert.ok(await card.evaluate((c) => Boolean(c.compareDocumentPosition(c.parentNode.querySelectorAll('.body')[1]) & Node.DOCUMENT_POSITION_FOLLOWING)));
  assert.equal(chatRequests.length, 2);
  const focused = await page.evaluate(() => document.activeElement?.shadowRoot?.activeElement?.id ?? null);
  assert.equal(focused, 'sb-input', 'after the click, focus is back in the message box');
  await screenshot(page, 'tool-approved');
  await context.close();
});
