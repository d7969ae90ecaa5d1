// Token refresh in Node.js: a token provider's short-lived JWTs are replaced over the
// open socket (`auth.refresh`) ahead of their `exp`, and the connection stays up.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';

import { SwitchboardClient } from '../dist/index.js';
import { Gateway, TrackedWebSocket, until } from './support/gateway.mjs';

const SECRET = 'js-client-test-secret-0123456789abcdef';
let gateway;
before(async () => {
  gateway = await Gateway.start(
    ['--demo-seed', '--offline-agent-delay', '2ms', '--jwt-hs256-secret', SECRET, '--allow-anonymous', 'false', '--jwt-leeway', '0s'],
    { name: 'js-auth' },
  );
});
after(() => gateway?.kill());

function signJwt(claims) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const head = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(claims)}`;
  return `${head}.${createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}

test('short-lived tokens are refreshed over the open socket before they expire', async () => {
  TrackedWebSocket.all = [];
  let issued = 0;
  const tokenProvider = async () => {
    issued += 1;
    const now = Math.floor(Date.now() / 1000);
    return signJwt({ sub: 'alice', org_id: 'default', roles: [], exp: now + 5, iat: now });
  };
  const client = new SwitchboardClient({ gateway: gateway.url, WebSocket: TrackedWebSocket, tokenProvider });
  const errors = [];
  client.addEventListener('error', (e) => errors.push(e.detail));
  client.start();
  try {
    await until(() => client.state === 'online', 'online');
    assert.equal(client.principal.user_id, 'alice');
    // The 5 s token is replaced about 3 s before its exp, then again for the next.
    await until(() => TrackedWebSocket.all[0].sent.filter((f) => f.type === 'auth.refresh').length >= 2, 'two refreshes', 12_000);
    assert.equal(TrackedWebSocket.all.length, 1, 'the same socket throughout');
    assert.equal(client.state, 'online');
    assert.deepEqual(errors, []);
    assert.ok(issued >= 3);
    await client.send('still here?');
  } finally {
    client.stop();
  }
});
