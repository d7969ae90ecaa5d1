// How long ago a conversation was last active, as the list shows it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { relativeTime } from '../src/conversations.js';

const NOW = Date.UTC(2026, 11, 6, 12, 0, 0);
const MINUTE = 60_000;

test('the largest whole unit, in words, with "yesterday" and "now" where the language has them', () => {
  assert.equal(relativeTime(NOW - 20_000, NOW, 'en'), 'now');
  assert.equal(relativeTime(NOW - 5 * MINUTE, NOW, 'en'), '5 minutes ago');
  assert.equal(relativeTime(NOW - 90 * MINUTE, NOW, 'en'), '1 hour ago');
  assert.equal(relativeTime(NOW - 30 * 60 * MINUTE, NOW, 'en'), 'yesterday');
  assert.equal(relativeTime(NOW - 3 * 24 * 60 * MINUTE, NOW, 'en'), '3 days ago');
  assert.equal(relativeTime(NOW - 10 * 24 * 60 * MINUTE, NOW, 'en'), 'last week');
  assert.equal(relativeTime(NOW - 400 * 24 * 60 * MINUTE, NOW, 'en'), 'last year');
  assert.equal(relativeTime(NOW - 5 * MINUTE, NOW, 'de'), 'vor 5 Minuten');
});
