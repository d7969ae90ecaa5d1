import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Histogram } from '../lib/histogram.mjs';
import { parseSocketIo } from '../lib/socketio.mjs';
import { startFakeSocketIo } from './fake-socketio.mjs';

const CLIENT = fileURLToPath(new URL('../client.mjs', import.meta.url));

function runClient(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLIENT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

test('Socket.IO packets: type, namespace, ack id, data', () => {
  assert.deepEqual(parseSocketIo('431["ok"]'), { type: 3, nsp: '/', id: 1, data: ['ok'] });
  assert.deepEqual(parseSocketIo('42["event",{"k":1}]'), {
    type: 2, nsp: '/', id: null, data: ['event', { k: 1 }],
  });
  assert.deepEqual(parseSocketIo('40{"sid":"x"}'), { type: 0, nsp: '/', id: null, data: { sid: 'x' } });
  assert.deepEqual(parseSocketIo('40/admin,{"sid":"x"}').nsp, '/admin');
  assert.equal(parseSocketIo('41').data, undefined);
  assert.equal(parseSocketIo('2'), null);
  assert.throws(() => parseSocketIo('42[not json'));
});

test('the histogram answers quantiles as HDR with 3 significant digits does', () => {
  const h = new Histogram();
  for (let v = 1; v <= 100_000; v += 1) h.record(v);
  const s = h.summary();
  assert.equal(s.count, 100_000);
  assert.equal(s.p50, 50_015); // hdrhistogram: highest value equivalent to 50,000
  assert.equal(s.p99, 99_007);
  assert.equal(s.max, 100_000);
  assert.equal(s.recorded.reduce((n, [, c]) => n + c, 0), 100_000);
});

test('against a fake socketioxide: every socket gets every event, pings are answered', async () => {
  const server = await startFakeSocketIo({ pingIntervalMs: 200 });
  try {
    const { code, out, err } = await runClient([
      '--server', 'socketioxide', '--addr', server.addr, '--connections', '50',
      '--rate', '100', '--warmup', '300ms', '--duration', '1s', '--drain', '2s',
      '--source-addresses', '0', '--max-runtime', '30s',
    ]);
    assert.equal(code, 0, err);
    const report = JSON.parse(out);
    assert.equal(report.connections.connected, 50);
    assert.equal(report.publish.published, 100);
    assert.equal(report.publish.warmup_published, 30);
    assert.equal(report.delivered, 50 * 100);
    assert.equal(report.latency_us.count, 50 * 100);
    assert.equal(report.publish_call_us.count, 100);
    assert.deepEqual(report.delivery_check, { members_checked: 50, members_short: 0, lost: 0, duplicates: 0 });
    assert.equal(report.errors.connect + report.errors.error_frames + report.errors.publish, 0);
    assert.equal(report.disconnects, 0);
    assert.ok(server.stats.pongs > 0, 'the client answers Engine.IO pings');
    assert.deepEqual(server.stats.badFrames, []);
    for (const name of ['ready', 'measuring', 'drained']) {
      assert.ok(err.includes(`{"phase":"${name}"`), `phase ${name} on stderr`);
    }
  } finally {
    server.close();
  }
});

test('refuses a server address off loopback', async () => {
  const { code, err } = await runClient(['--addr', '192.0.2.1:80']);
  assert.equal(code, 2);
  assert.match(err, /127\.0\.0\.0\/8/);
});
