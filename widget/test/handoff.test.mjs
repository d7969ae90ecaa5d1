// Human handoff across two replicas (Redis backplane, one PostgreSQL store): a
// customer in the widget on replica A, operators in the console (`/console`) on
// replica B. The customer asks for a person; the console's inbox shows it live; Dana
// claims it (a second operator's claim is refused, readably); Dana and the customer
// talk while the assistant stays silent; Dana releases it and the assistant answers
// the customer's next question. Screenshots for docs/ (console-inbox,
// console-conversation, widget-handoff) at the key moments.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  ADMIN_KEY,
  KEY_FLAGS,
  api,
  docsScreenshot,
  embedPage,
  history,
  readable,
  recordFrames,
  sel,
  signJwt,
  storedSessionId,
} from './support/browser.mjs';
import { Gateway } from './support/processes.mjs';
import { sharedProcesses } from './support/fixture.mjs';

const fx = sharedProcesses({ postgres: true });

const SECRET = 'handoff-console-secret-0123456789abcdef';
const ORG = 'default';
const FIRST_QUESTION = 'How do I deploy on Kubernetes?';
const TO_THE_PERSON = 'Thanks Dana! The cluster has three nodes behind an nginx ingress.';
const LAST_QUESTION = 'What happens to a slow consumer?';
const DANA_SAYS = 'Hi, I am Dana from support. Which ingress controller do you use?';

async function startReplica(name) {
  const args = [
    '--backplane', fx.redis.url,
    '--backplane-prefix', 'handoff',
    '--store', fx.pg.url,
    '--server-id', name,
    '--demo-seed',
    '--offline-agent-delay', '10ms',
    '--jwt-hs256-secret', SECRET,
    ...KEY_FLAGS,
  ];
  const gateway = await Gateway.start(args, { name });
  fx.gateways.push(gateway);
  return gateway;
}

function token(sub, { name, roles = [] } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub, org_id: ORG, groups: [], roles, exp: now + 3600, iat: now };
  if (name) claims.name = name;
  return signJwt(SECRET, claims);
}

const widget = {
  handoff: 'switchboard-chat button.handoff',
  handoffBar: 'switchboard-chat .handoff-bar',
  line: (state) => `switchboard-chat .notice[data-kind="handoff"][data-state="${state}"]`,
  answered: 'switchboard-chat .msg[data-role="assistant"][data-state="completed"]:not(.greeting)',
};

const con = {
  connection: '#connection',
  who: '#who-name',
  entry: (sessionId) => `#inbox-list .entry[data-session-id="${sessionId}"]`,
  empty: '#inbox-empty',
  title: '#conversation-title',
  state: '#conversation-state',
  claim: '#claim',
  release: '#release',
  error: '#conversation-error',
  transcript: '#transcript',
  msg: (role) => `#transcript .msg[data-role="${role}"]`,
  sources: '#transcript .msg[data-role="assistant"] .sources',
  line: (state) => `#transcript .status-line[data-kind="handoff"][data-state="${state}"]`,
  reply: '#reply',
  send: '#send',
};

/** A console page signed in (through `#token=`) on `gateway`, connected. */
async function openConsole(context, gateway, jwt) {
  const page = await context.newPage();
  const frames = recordFrames(page);
  const errors = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  await page.goto(`${gateway.url}/console#token=${jwt}`);
  await page.locator(con.connection).filter({ hasText: 'Connected' }).waitFor();
  return { page, frames, errors };
}

test('a customer on one replica asks for a person; an operator on the other takes over in the console, answers, and hands back to the assistant', async () => {
  const a = await startReplica('handoff-a');
  const b = await startReplica('handoff-b');

  // The operator's console on replica B, open before anything happens.
  const operatorContext = await fx.browser.newContext({ viewport: { width: 1280, height: 820 } });
  const danaToken = token('op-dana', { name: 'Dana', roles: ['operator'] });
  const dana = await openConsole(operatorContext, b, danaToken);
  assert.equal(await dana.page.locator(con.who).textContent(), `Dana · ${ORG}`);
  assert.match(await dana.page.locator(con.empty).textContent(), /No conversation is waiting/);
  // The URL no longer holds the token once it is taken.
  assert.equal(new URL(dana.page.url()).hash, '');

  // The customer in the widget on replica A asks the assistant first.
  const customerContext = await fx.browser.newContext({ viewport: { width: 520, height: 900 } });
  const customer = await customerContext.newPage();
  const customerFrames = recordFrames(customer);
  const customerToken = token('ana', { name: 'Ana' });
  const url = fx.host.page(
    '/handoff',
    embedPage(a.url, {
      attributes: { 'storage-key': 'handoff', 'chat-title': 'Shop help', 'token-provider': 'getChatToken' },
      head: '<style>switchboard-chat { --sb-height: 860px; }</style>',
      beforeScript: `<script>window.getChatToken = async () => ${JSON.stringify(customerToken)};</script>`,
    }),
  );
  await customer.goto(url);
  await customer.waitForFunction(() => document.querySelector('switchboard-chat')?.status === 'online', null, { timeout: 30_000 });
  assert.equal(await customer.locator(widget.handoff).textContent(), 'Talk to a person');
  await customer.locator(sel.input).fill(FIRST_QUESTION);
  await customer.locator(sel.send).click();
  await customer.locator(widget.answered).first().waitFor();
  const sessionId = await storedSessionId(customer);
  assert.ok(sessionId, 'the widget keeps its session id');

  // 1. The customer asks for a person: the waiting line, and no button any more.
  await customer.locator(widget.handoff).click();
  const waiting = customer.locator(widget.line('waiting'));
  await waiting.waitFor();
  assert.ok((await readable(waiting)).length > 0);
  await customer.locator(widget.handoffBar).waitFor({ state: 'hidden' });
  assert.ok(customerFrames.sent.some((f) => f.type === 'handoff.request' && f.session_id === sessionId));

  // 2. The console's inbox shows it, live (an `inbox.changed` on B's staff stream).
  const entry = dana.page.locator(con.entry(sessionId));
  await entry.waitFor();
  assert.equal(await entry.getAttribute('data-state'), 'waiting');
  assert.match(await readable(entry), /Waiting/);
  assert.ok(
    dana.frames.received.some((f) => f.type === 'inbox.changed' && f.session?.session_id === sessionId && f.handoff?.state === 'waiting'),
    'the inbox learned of it from a live inbox.changed frame',
  );
  await entry.filter({ hasText: FIRST_QUESTION }).waitFor(); // its summary followed

  // Opening it shows the whole conversation, with the assistant's sources.
  await entry.click();
  await dana.page.locator(con.msg('user')).filter({ hasText: FIRST_QUESTION }).waitFor();
  await dana.page.locator(con.sources).first().waitFor();
  assert.ok((await dana.page.locator(`${con.sources} li`).count()) > 0);
  await dana.page.locator(con.line('waiting')).waitFor();
  assert.match(await dana.page.locator(con.state).textContent(), /Waiting for a person/);
  assert.ok(await dana.page.locator(con.claim).isVisible());
  await docsScreenshot(dana.page, 'console-inbox');

  // 3. Dana claims it: her console says so, and the customer sees her join.
  await dana.page.locator(con.claim).click();
  await dana.page.locator(con.state).filter({ hasText: 'You hold this conversation' }).waitFor();
  await dana.page.locator(con.release).waitFor();
  assert.ok(await dana.page.locator(con.claim).isHidden());
  await dana.page.locator(`${con.entry(sessionId)}[data-state="human"]`).filter({ hasText: 'With you' }).waitFor();
  const joined = customer.locator(widget.line('human'));
  await joined.waitFor();
  assert.equal(await readable(joined), 'Dana joined the conversation');

  // Another operator (on replica A) cannot take it from her, and reads why.
  const samContext = await fx.browser.newContext({ viewport: { width: 1280, height: 820 } });
  const sam = await openConsole(samContext, a, token('op-sam', { name: 'Sam', roles: ['operator'] }));
  await sam.page.locator(con.entry(sessionId)).filter({ hasText: 'With Dana' }).click();
  await sam.page.locator(con.state).filter({ hasText: 'Dana holds this conversation' }).waitFor();
  await sam.page.locator(con.claim).click();
  const refused = sam.page.locator(con.error);
  await refused.waitFor();
  assert.match(await refused.textContent(), /Could not claim the conversation: another operator holds this conversation/);
  assert.ok(sam.frames.received.some((f) => f.type === 'error' && f.code === 'conflict'));
  await samContext.close();

  // 4. Dana answers: the customer sees an operator message with her name.
  await dana.page.locator(con.reply).fill(DANA_SAYS);
  await dana.page.locator(con.send).click();
  const fromDana = customer.locator(sel.operator).filter({ hasText: DANA_SAYS });
  await fromDana.waitFor();
  assert.equal(await fromDana.locator('.author').textContent(), 'Dana (operator)');
  await dana.page.locator(con.msg('operator')).filter({ hasText: DANA_SAYS }).waitFor();

  // 5. The customer writes to her: Dana sees it, and no AI turn starts.
  const answersBefore = await customer.locator(widget.answered).count();
  await customer.locator(sel.input).fill(TO_THE_PERSON);
  await customer.locator(sel.send).click();
  await dana.page.locator(con.msg('user')).filter({ hasText: TO_THE_PERSON }).waitFor();
  await docsScreenshot(dana.page, 'console-conversation');
  await docsScreenshot(customer.locator('switchboard-chat'), 'widget-handoff');

  // 6. Dana releases it: the customer is back with the assistant, which answers again.
  await dana.page.locator(con.release).click();
  await dana.page.locator(con.line('assistant')).waitFor();
  await dana.page.locator(con.entry(sessionId)).waitFor({ state: 'detached' });
  const back = customer.locator(widget.line('assistant'));
  await back.waitFor();
  assert.equal(await readable(back), 'You are back with the assistant');
  await customer.locator(widget.handoff).waitFor();
  await customer.locator(sel.input).fill(LAST_QUESTION);
  await customer.locator(sel.send).click();
  await customer.waitForFunction(
    (n) => document.querySelector('switchboard-chat').shadowRoot.querySelectorAll('.msg[data-role="assistant"][data-state="completed"]:not(.greeting)').length > n,
    answersBefore,
  );
  // The answer is in Dana's console too, live.
  await dana.page.locator(`${con.msg('assistant')}[data-state="completed"]`).nth(1).waitFor();

  // The record: turns answered the first and the last question only — the message to
  // Dana started none, though a turn for it would have come before the last one's.
  const events = await history(a.url, sessionId);
  const messages = events.filter((e) => e.type === 'message');
  const idOf = (text) => messages.find((m) => m.role === 'user' && m.text === text)?.message_id;
  const replies = events.filter((e) => e.type === 'turn.start').map((e) => e.reply_to);
  assert.deepEqual(replies, [idOf(FIRST_QUESTION), idOf(LAST_QUESTION)], JSON.stringify(events.map((e) => e.type)));
  assert.ok(idOf(TO_THE_PERSON), 'the message to Dana is in the transcript');
  const operatorMessage = messages.find((m) => m.role === 'operator');
  assert.equal(operatorMessage?.author, 'Dana');
  assert.equal(operatorMessage?.text, DANA_SAYS);
  assert.deepEqual(
    events.filter((e) => e.type === 'handoff').map((e) => [e.state, e.by]),
    [
      ['waiting', 'customer'],
      ['human', 'operator'],
      ['assistant', 'operator'],
    ],
  );

  // Nothing went wrong in the console's page, and no token reached a gateway's log.
  assert.deepEqual(dana.errors, []);
  for (const gateway of [a, b]) {
    const log = readFileSync(gateway.logPath, 'utf8');
    for (const secret of [danaToken, customerToken]) assert.ok(!log.includes(secret.split('.')[2]), `a token in ${gateway.logPath}`);
  }
  await operatorContext.close();
  await customerContext.close();
});

test('the button before any message starts the conversation; the org’s waiting message is shown; with handoff off, the customer reads why', async () => {
  const gateway = await Gateway.start(['--demo-seed', '--offline-agent-delay', '5ms', '--jwt-hs256-secret', SECRET, ...KEY_FLAGS], { name: 'handoff-settings' });
  fx.gateways.push(gateway);
  const waitingMessage = 'Thanks! A person from the shop answers within two minutes.';
  const settings = (org, body) => api(gateway.url, 'PUT', `/v1/admin/handoff?org_id=${org}`, ADMIN_KEY, body);
  assert.equal((await settings(ORG, { enabled: true, waiting_message: waitingMessage, when_unanswered: false })).status, 200);
  assert.equal((await settings('closed', { enabled: false, waiting_message: 'unused', when_unanswered: false })).status, 200);

  const context = await fx.browser.newContext();
  async function customerPage(path, jwt) {
    const page = await context.newPage();
    await page.goto(
      fx.host.page(
        path,
        embedPage(gateway.url, {
          attributes: { 'storage-key': path.slice(1), 'token-provider': 'getChatToken' },
          beforeScript: `<script>window.getChatToken = async () => ${JSON.stringify(jwt)};</script>`,
        }),
      ),
    );
    await page.waitForFunction(() => document.querySelector('switchboard-chat')?.status === 'online', null, { timeout: 30_000 });
    return page;
  }

  // No message yet: asking for a person starts the conversation, and waits.
  const open = await customerPage('/handoff-first', token('bo'));
  assert.equal(await storedSessionId(open), null);
  await open.locator(widget.handoff).click();
  const waiting = open.locator(widget.line('waiting'));
  await waiting.waitFor();
  assert.equal(await readable(waiting), waitingMessage);
  assert.ok(await storedSessionId(open));
  assert.equal(await open.evaluate(() => document.querySelector('switchboard-chat').handoffState), 'waiting');
  // A reload replays the conversation: still waiting, still no button.
  await open.reload();
  await open.locator(widget.line('waiting')).waitFor();
  await open.locator(widget.handoffBar).waitFor({ state: 'hidden' });

  // An org with handoff off: the request is refused, and the customer reads why.
  const now = Math.floor(Date.now() / 1000);
  const closedToken = signJwt(SECRET, { sub: 'cy', org_id: 'closed', groups: [], roles: [], exp: now + 3600, iat: now });
  const closed = await customerPage('/handoff-closed', closedToken);
  await closed.locator(widget.handoff).click();
  const refused = closed.locator('switchboard-chat .notice[data-kind="system"]').filter({ hasText: 'Could not reach a person' });
  await refused.waitFor();
  await closed.locator(widget.handoff).filter({ hasText: 'Talk to a person' }).waitFor();
  assert.ok(await closed.locator(widget.handoff).isEnabled());
  assert.equal(await closed.locator(widget.line('waiting')).count(), 0);
  await context.close();
});
