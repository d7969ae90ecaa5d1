// Human handoff through the hook: the customer asks for a person (requestHuman, or by
// asking the assistant), `handoff` becomes `waiting` with the org's waiting message;
// an operator claims it over the HTTP API and `handoff` becomes `human` with her name;
// her messages join the transcript as `operator` ones and no AI answers meanwhile; she
// releases it and `handoff` is back with the assistant.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { api, ask, fixture, history, sel, signJwt, until } from './support/harness.mjs';

const fx = fixture();
const DANA = signJwt({ sub: 'op-dana', name: 'Dana', roles: ['operator'] });
// A signed-in customer (through the hook's tokenProvider): staff may act on her conversation.
const ANA = signJwt({ sub: 'ana', name: 'Ana' });
const WAITING = 'Someone from the team will be with you shortly.';
const HANDED_OFF = 'I have asked a person from the team to join this conversation. They will be with you shortly.';

test('Talk to a person: waiting, then Dana holds it and writes, then the assistant again', async () => {
  const gateway = await fx.gateway(['--offline-agent-delay', '10ms']);
  const { page, errors, sent } = await fx.open(gateway.url, {}, { tokenFromPage: ANA });
  await page.locator(sel.chat('open')).waitFor();
  const handoff = page.locator('#handoff');
  assert.equal(await handoff.getAttribute('data-state'), 'assistant');

  // Asking before any message starts the conversation, then asks for a person.
  await page.locator('#human').click();
  await page.locator('#handoff[data-state="waiting"]').waitFor();
  assert.equal(await handoff.textContent(), WAITING, "the org's waiting message, from the handoff event");
  assert.equal(await page.locator('#human').count(), 0);
  const sessionId = await page.locator('#chat').getAttribute('data-session-id');
  assert.deepEqual(
    sent.filter((f) => f.type === 'handoff.request').map((f) => [f.session_id, f.reason]),
    [[sessionId, 'asked from the page']],
  );

  // Dana claims it over the HTTP API, and writes.
  const claimed = await api(gateway, 'POST', `/v1/sessions/${sessionId}/handoff/claim`, DANA);
  assert.equal(claimed.status, 200, JSON.stringify(claimed.body));
  await page.locator('#handoff[data-state="human"]').waitFor();
  assert.equal(await handoff.textContent(), 'Dana joined the conversation');
  const hello = await api(gateway, 'POST', `/v1/sessions/${sessionId}/messages`, DANA, { text: 'Hi, Dana here. How can I help?' });
  assert.equal(hello.status, 202, JSON.stringify(hello.body));
  const fromDana = page.locator(sel.operator);
  await fromDana.waitFor();
  assert.equal(await fromDana.locator('.author').textContent(), 'Dana');
  assert.equal(await fromDana.locator('.text').textContent(), 'Hi, Dana here. How can I help?');
  assert.equal(await fromDana.getAttribute('data-message-id'), hello.body.message_id);

  // The customer answers her: delivered, and no AI turn starts while Dana holds it.
  await ask(page, 'My order never arrived.');
  await page.locator(`${sel.user}[data-status="sent"]`).waitFor();
  assert.equal(await page.locator(`${sel.user} .author`).textContent(), 'ana', "the customer's user_id");
  await new Promise((resolve) => setTimeout(resolve, 300)); // an answer would have started by now (10 ms per delta)
  assert.equal(await page.locator(sel.assistant).count(), 0);
  assert.ok(!(await history(gateway, sessionId)).some((e) => e.type === 'turn.start'));

  // She gives it back: the assistant holds it again and answers the next question.
  const released = await api(gateway, 'POST', `/v1/sessions/${sessionId}/handoff/release`, DANA);
  assert.equal(released.status, 200, JSON.stringify(released.body));
  await page.locator('#handoff[data-state="assistant"]').waitFor();
  await page.locator('#human').waitFor();
  await ask(page, 'What happens to a slow consumer?');
  await page.locator(`${sel.assistant}[data-status="completed"]`).waitFor();
  assert.deepEqual(
    await page.locator('.msg').evaluateAll((items) => items.map((li) => li.dataset.role)),
    ['operator', 'user', 'user', 'assistant'],
  );
  assert.deepEqual(errors, []);
});

test('asking the assistant for a human: it hands off, and the conversation waits for a person', async () => {
  const gateway = await fx.gateway(['--offline-agent-delay', '10ms']);
  const { page, errors, sent } = await fx.open(gateway.url);
  await page.locator(sel.chat('open')).waitFor();

  await ask(page, 'Can I talk to a human, please?');
  await page.locator('#handoff[data-state="waiting"]').waitFor();
  assert.equal(await page.locator('#handoff').textContent(), WAITING);
  await page.locator(`${sel.assistant}[data-status="completed"]`).waitFor();
  assert.equal(await page.locator(`${sel.assistant} .text`).textContent(), HANDED_OFF);
  assert.ok(!sent.some((f) => f.type === 'handoff.request'), 'the assistant asked, not the page');

  const sessionId = await page.locator('#chat').getAttribute('data-session-id');
  const change = await until(async () => (await history(gateway, sessionId)).find((e) => e.type === 'handoff'), 'the handoff event');
  assert.deepEqual([change.state, change.by], ['waiting', 'assistant']);
  assert.deepEqual(errors, []);
});
