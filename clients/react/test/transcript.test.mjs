// A message sent through the hook shows at once, the answer streams into the
// transcript as one growing entry and completes, and the transcript matches what the
// gateway recorded: each message once, in order, with the gateway's ids — whichever
// of a message's event and its acceptance arrives first.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ask, fixture, history, sel, shownAs, until } from './support/harness.mjs';

const fx = fixture();

const FIRST = 'What happens to a slow consumer?';
const SECOND = 'How do I resume after a disconnect?';

test('a question shows at once, its answer grows delta by delta, then completes once', async () => {
  const gateway = await fx.gateway(['--offline-agent-delay', '40ms']);
  const { page, errors, sockets } = await fx.open(gateway.url);
  await page.locator(sel.chat('open')).waitFor();

  await ask(page, FIRST);
  // The user's message is in the transcript before the gateway accepted it, then accepted.
  const mine = page.locator(sel.user);
  await page.locator(`${sel.user}[data-status="sent"]`).waitFor();
  assert.deepEqual(await shownAs(page, await mine.getAttribute('data-id')), [
    { text: FIRST, status: 'sending' },
    { text: FIRST, status: 'sent' },
  ]);

  // The answer streams: one assistant entry, `streaming`, a Stop button.
  const answer = page.locator(sel.assistant);
  await page.locator(`${sel.assistant}[data-status="streaming"]`).waitFor();
  await page.locator('#chat[data-streaming="true"] #stop').waitFor();
  await page.locator(`${sel.assistant}[data-status="completed"]`).waitFor();
  await page.locator('#chat[data-streaming="false"]').waitFor();
  assert.equal(await page.locator('#stop').count(), 0, 'no Stop button once the answer completed');

  // What the gateway recorded for this session.
  const sessionId = await page.locator('#chat').getAttribute('data-session-id');
  assert.match(sessionId, /^s_/);
  const events = await until(async () => {
    const all = await history(gateway, sessionId);
    return all.some((e) => e.type === 'message' && e.role === 'assistant') && all;
  }, 'the assistant message in the history');
  const end = events.find((e) => e.type === 'turn.end');
  assert.equal(end.status, 'completed');
  const deltas = events.filter((e) => e.type === 'turn.delta');
  assert.ok(deltas.length >= 5, `a streamed answer (${deltas.length} deltas)`);

  // It grew: the entry showed several ever longer prefixes of the final text while streaming.
  const shown = await shownAs(page, end.turn_id);
  const streaming = shown.filter((s) => s.status === 'streaming' && s.text);
  assert.ok(streaming.length >= 3, `the answer was seen growing (${streaming.map((s) => s.text.length)})`);
  for (let i = 1; i < streaming.length; i += 1) assert.ok(streaming[i].text.length > streaming[i - 1].text.length);
  for (const s of streaming) assert.ok(end.text.startsWith(s.text), `"${s.text}" is a prefix of the answer`);
  assert.deepEqual(shown.at(-1), { text: end.text, status: 'completed' });

  // The assistant's `message` after turn.end is the same entry, not a second one.
  const [userMessage, assistantMessage] = events.filter((e) => e.type === 'message');
  await page.locator(`${sel.assistant}[data-message-id="${assistantMessage.message_id}"]`).waitFor();
  assert.equal(await answer.count(), 1);
  assert.equal(await mine.getAttribute('data-message-id'), userMessage.message_id);
  assert.equal(await mine.locator('.author').textContent(), 'You'); // anonymous: no author

  // A second question: both exchanges, in order, each message once.
  await ask(page, SECOND);
  await page.locator(`${sel.assistant}[data-status="completed"]`).nth(1).waitFor();
  const transcript = await page.locator('.msg').evaluateAll((items) => items.map((li) => [li.dataset.role, li.dataset.status]));
  assert.deepEqual(transcript, [
    ['user', 'sent'],
    ['assistant', 'completed'],
    ['user', 'sent'],
    ['assistant', 'completed'],
  ]);
  assert.equal(await page.locator(sel.user).nth(1).locator('.text').textContent(), SECOND);
  const recorded = (await history(gateway, sessionId)).filter((e) => e.type === 'turn.end');
  assert.equal(await answer.nth(1).locator('.text').textContent(), recorded[1].text);

  assert.equal(sockets.length, 1, 'one WebSocket for the whole conversation, whatever the renders');
  assert.deepEqual(errors, []);
});

test("a message whose event arrives before its acceptance is one entry, sending then sent", async () => {
  const gateway = await fx.gateway(['--offline-agent-delay', '10ms']);
  // The gateway sends either first; hold every message.accepted back to make the event come first.
  const order = [];
  const prepare = (page) =>
    page.routeWebSocket(/\/ws/, (ws) => {
      const server = ws.connectToServer();
      server.onMessage((message) => {
        const frame = JSON.parse(message);
        if (frame.type === 'message' && frame.role === 'user') order.push('event');
        if (frame.type !== 'message.accepted') return ws.send(message);
        setTimeout(() => {
          order.push('accepted');
          ws.send(message);
        }, 300);
      });
    });
  const { page, errors } = await fx.open(gateway.url, {}, { prepare });
  await page.locator(sel.chat('open')).waitFor();

  await ask(page, FIRST);
  await page.locator(`${sel.assistant}[data-status="completed"]`).waitFor();
  await until(() => order.length === 2, 'the held message.accepted to be delivered');
  assert.deepEqual(order, ['event', 'accepted']);
  await new Promise((resolve) => setTimeout(resolve, 100)); // the acceptance rendered
  const mine = page.locator(sel.user);
  assert.equal(await mine.count(), 1);
  assert.deepEqual(await shownAs(page, await mine.getAttribute('data-id')), [
    { text: FIRST, status: 'sending' },
    { text: FIRST, status: 'sent' },
  ]);
  const [userMessage] = (await history(gateway, await page.locator('#chat').getAttribute('data-session-id'))).filter((e) => e.type === 'message');
  assert.equal(await mine.getAttribute('data-message-id'), userMessage.message_id);
  assert.deepEqual(errors, []);
});
