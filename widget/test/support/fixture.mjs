// What the multi-replica browser tests share: Chromium, the host pages, a Redis
// backplane (and a PostgreSQL store when asked), started once before a file's tests
// and stopped after them with every gateway the file started.

import { after, before } from 'node:test';

import { HostPages, launchBrowser } from './browser.mjs';
import { Postgres, Redis } from './processes.mjs';

/**
 * Register the hooks that start and stop the shared processes; the returned object
 * holds them once started: `redis`, `pg` (with `{ postgres: true }`), `browser`,
 * `host`, and `gateways` (push every gateway started, to have it killed).
 */
export function sharedProcesses({ postgres = false } = {}) {
  const fx = { redis: null, pg: null, browser: null, host: null, gateways: [] };
  before(async () => {
    [fx.redis, fx.browser, fx.host, fx.pg] = await Promise.all([
      Redis.start(),
      launchBrowser(),
      HostPages.start(),
      postgres ? Postgres.start() : null,
    ]);
  });
  after(async () => {
    await fx.browser?.close();
    await fx.host?.close();
    for (const gateway of fx.gateways) gateway.kill();
    fx.redis?.kill();
    fx.pg?.kill();
  });
  return fx;
}
