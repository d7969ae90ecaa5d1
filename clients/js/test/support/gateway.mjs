// A real gateway for the package's tests: the widget's test support starts it (the
// binary `cargo test` built, target/debug/switchboard, or $SWITCHBOARD_BIN) on a free
// 127.0.0.1 port with a fresh data directory, and kills it when the tests end.

import WebSocket from 'ws';

export { Gateway } from '../../../../widget/test/support/processes.mjs';
export { UpgradeBreakingProxy } from '../../../../widget/test/support/upgrade-proxy.mjs';

export const PUBLISHER_KEY = 'pub_secret_0123456789abcdef';
export const ADMIN_KEY = 'adm_secret_0123456789abcdef';
export const KEY_FLAGS = ['--publisher-keys', `backend:${PUBLISHER_KEY}`, '--admin-keys', `ops:${ADMIN_KEY}`];

/** The `ws` WebSocket, remembering each socket it opens (so a test can kill one). */
export class TrackedWebSocket extends WebSocket {
  static all = [];
  constructor(...args) {
    super(...args);
    this.sent = [];
    TrackedWebSocket.all.push(this);
  }

  send(data, ...rest) {
    this.sent.push(JSON.parse(data));
    return super.send(data, ...rest);
  }
}

/** Resolves once `check()` is truthy (polled), with its value; rejects after `ms`. */
export async function until(check, what, ms = 15_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A session's retained events, as the gateway has them (admin key). */
export async function history(gateway, sessionId) {
  const response = await fetch(`${gateway.url}/v1/sessions/${sessionId}/events`, {
    headers: { authorization: `Bearer ${ADMIN_KEY}` },
  });
  if (response.status !== 200) throw new Error(`history of ${sessionId}: ${response.status} ${await response.text()}`);
  return (await response.json()).events;
}
