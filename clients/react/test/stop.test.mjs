// stop() cancels the answer that is streaming: the hook sends turn.cancel for its
// turn, the entry ends `cancelled` with the text so far, and no assistant message
// follows.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ask, fixture, history, sel } from './support/harness.mjs';

const fx = fixture();

test('Stop during a long answer ends it cancelled, with the text streamed so far', async () => {
  // A slow agent: about 20 deltas, 150 ms apart, so the answer is still streaming when Stop is pressed.
  const gateway = await fx.gateway(['--offline-agent-delay', '150ms']);
  const { page, errors, sent } = await fx.open(gateway.url);
  await page.locator(sel.chat('open')).waitFor();

  await ask(page, 'What happens to a slow consumer?');
  const answer = page.locator(sel.assistant);
  await page.waitForFunction(() => document.querySelector('.msg[data-role="assistant"][data-status="streaming"] .text')?.textContent);
  const turnId = await answer.getAttribute('data-turn-id');
  await page.locator('#stop').click();

  await page.locator(`${sel.assistant}[data-status="cancelled"]`).waitFor();
  await page.locator('#chat[data-streaming="false"]').waitFor();
  assert.equal(await page.locator('#stop').count(), 0);
  assert.deepEqual(
    sent.filter((f) => f.type === 'turn.cancel').map((f) => f.turn_id),
    [turnId],
    'one turn.cancel, for the streaming turn',
  );

  const sessionId = await page.locator('#chat').getAttribute('data-session-id');
  const events = await history(gateway, sessionId);
  const end = events.find((e) => e.type === 'turn.end');
  assert.equal(end.status, 'cancelled');
  assert.equal(end.turn_id, turnId);
  assert.equal(await answer.locator('.text').textContent(), end.text, 'the entry keeps the text streamed until the cancel');
  assert.ok(!events.some((e) => e.type === 'message' && e.role === 'assistant'), 'no assistant message after a cancelled turn');
  assert.equal(await answer.count(), 1);
  assert.deepEqual(errors, []);
});
