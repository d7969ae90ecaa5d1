// A real gateway for the package's tests: the widget's test support starts it (the
// binary `cargo test` built, target/debug/switchboard, or $SWITCHBOARD_BIN) on a free
// 127.0.0.1 port with a fresh data directory, and kills it when the tests end.

import WebSocket from 'ws';
import { retainedEvents, until } from '../../../../widget/test/support/polling.mjs';

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

export { until };

/** A session's retained events, as the gateway has them (admin key). */
export const history = (gateway, sessionId) => retainedEvents(gateway, sessionId, ADMIN_KEY);
