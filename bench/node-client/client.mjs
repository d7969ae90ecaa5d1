#!/usr/bin/env node
// The Node.js client shape of the fan-out benchmark: ONE process that holds every
// socket, parses every frame, and publishes over keep-alive HTTP from the same event
// loop. It opens N WebSockets, joins them to M sessions (Switchboard) or rooms
// (socketioxide), waits until all joined, publishes ~100-byte payloads at a paced rate
// (warm-up, then the measuring window), waits for the deliveries in flight, and prints
// ONE JSON report on stdout. Every run only talks to 127.0.0.0/8, is bounded in count
// and time, and stops by itself.
//
//   node client.mjs --server switchboard --addr 127.0.0.1:8080 --connections 1000 \
//        --sessions 1 --rate 200 --warmup 1s --duration 5s
//   node client.mjs --spec run.json          (the same options as a JSON object)
//
// stdout: the report. stderr: progress, and one JSON line per phase
// (`{"phase":"ready"|"measuring"|"drained",…}`) for a coordinator that samples the
// server over the measuring window (switchboard-bench fanout --client node).

import http from 'node:http';
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

import { Histogram } from './lib/histogram.mjs';
import { socketioxide } from './lib/socketio.mjs';
import { switchboard } from './lib/switchboard.mjs';

const KINDS = { switchboard, socketioxide };
const BENCH_PUBLISHER_KEY = 'bench_publisher_secret_0123456789';
/** How long one connect + handshake + join may take. */
const CONNECT_PATIENCE_MS = 20_000;
const PUBLISH_TIMEOUT_MS = 10_000;

// One monotonic clock for the publisher and every receiver (they share the process):
// nanoseconds since start, small enough to travel as a JSON number.
const BASE = process.hrtime.bigint();
const nowNs = () => Number(process.hrtime.bigint() - BASE);

const OPTIONS = {
  spec: { type: 'string' },
  server: { type: 'string', default: 'switchboard' },
  addr: { type: 'string' },
  connections: { type: 'string', default: '1000' },
  sessions: { type: 'string', default: '1' },
  rate: { type: 'string', default: '100' },
  warmup: { type: 'string', default: '1s' },
  duration: { type: 'string', default: '10s' },
  drain: { type: 'string', default: '2s' },
  'publish-sockets': { type: 'string', default: '32' },
  'max-in-flight': { type: 'string', default: '256' },
  'connect-concurrency': { type: 'string', default: '256' },
  'source-addresses': { type: 'string', default: '16' },
  key: { type: 'string', default: BENCH_PUBLISHER_KEY },
  'payload-bytes': { type: 'string', default: '100' },
  'max-runtime': { type: 'string', default: '300s' },
};

/** `500ms`, `5s`, `2m`, or a number of seconds → milliseconds. */
function durationMs(text) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(text).trim());
  if (!m) throw new Error(`${JSON.stringify(text)}: a duration such as 500ms, 5s or 2m`);
  const value = Number(m[1]);
  return m[2] === 'ms' ? value : m[2] === 'm' ? value * 60_000 : value * 1000;
}

function readOptions(argv) {
  const { values } = parseArgs({ args: argv, options: OPTIONS, strict: true });
  const raw = values.spec ? { ...values, ...JSON.parse(readFileSync(values.spec, 'utf8')) } : values;
  const int = (name, min, max) => {
    const n = Number(raw[name]);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new Error(`--${name} ${raw[name]}: a whole number from ${min} to ${max}`);
    }
    return n;
  };
  if (!KINDS[raw.server]) throw new Error(`--server ${raw.server}: switchboard or socketioxide`);
  if (!raw.addr) throw new Error('--addr 127.0.0.1:PORT is required');
  const host = raw.addr.replace(/:\d+$/, '');
  const port = Number(raw.addr.slice(host.length + 1));
  // Load only ever goes to this machine.
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) && host !== 'localhost') {
    throw new Error(`--addr ${raw.addr}: the load client only targets 127.0.0.0/8`);
  }
  const rate = Number(raw.rate);
  if (!(rate > 0 && rate <= 1_000_000)) throw new Error(`--rate ${raw.rate}: 0 < rate ≤ 1000000`);
  const opts = {
    server: raw.server,
    addr: raw.addr,
    host,
    port,
    connections: int('connections', 1, 1_000_000),
    sessions: int('sessions', 1, 100_000),
    rate,
    warmupMs: durationMs(raw.warmup),
    durationMs: durationMs(raw.duration),
    drainMs: durationMs(raw.drain),
    publishSockets: int('publish-sockets', 1, 1024),
    maxInFlight: int('max-in-flight', 1, 100_000),
    connectConcurrency: int('connect-concurrency', 1, 100_000),
    sourceAddresses: int('source-addresses', 0, 250),
    key: raw.key,
    payloadBytes: int('payload-bytes', 0, 65_536),
    maxRuntimeMs: durationMs(raw['max-runtime']),
  };
  if (opts.sessions > opts.connections) {
    throw new Error('--sessions must not exceed --connections (each session needs members)');
  }
  return opts;
}

function log(text) {
  process.stderr.write(`node-client: ${text}\n`);
}

function phase(name, fields = {}) {
  process.stderr.write(`${JSON.stringify({ phase: name, ...fields })}\n`);
}

/** One client socket and what it received. */
class Conn {
  constructor(run, index, sessionIndex) {
    this.run = run;
    this.index = index;
    this.sessionIndex = sessionIndex;
    this.session = run.sessions[sessionIndex];
    this.state = 'open';
    this.ws = null;
    this.received = 0;
    // One bit per publish `k`: a second delivery of the same event is a duplicate.
    this.seen = new Uint8Array(Math.ceil(run.total / 8));
    this.settle = null;
  }

  /** Connect and join; resolves true once joined, false when it failed. */
  open() {
    const { opts, kind } = this.run;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.fail('connect and join timed out'), CONNECT_PATIENCE_MS);
      this.settle = (ok) => {
        clearTimeout(timer);
        this.settle = null;
        resolve(ok);
      };
      const options = { perMessageDeflate: false, handshakeTimeout: CONNECT_PATIENCE_MS };
      // Several source addresses of 127.0.0.0/8: each has its own ephemeral ports.
      if (opts.sourceAddresses > 0 && opts.host.startsWith('127.')) {
        options.localAddress = `127.0.0.${2 + (this.index % opts.sourceAddresses)}`;
      }
      const ws = new WebSocket(kind.wsUrl(opts.addr), options);
      this.ws = ws;
      ws.on('message', (data, isBinary) => {
        if (isBinary) {
          this.errorFrame('a binary frame');
          return;
        }
        const payload = kind.onText(this, data.toString());
        if (payload !== null) this.run.deliver(this, payload);
      });
      ws.on('error', (e) => this.run.noteError(`socket ${this.index}: ${e.message}`));
      ws.on('close', (code) => {
        if (this.state === 'joined') {
          this.state = 'closed';
          if (!this.run.closing) {
            this.run.disconnects += 1;
            this.run.noteError(`socket ${this.index} closed by the server (${code})`);
          }
        }
        if (this.settle) this.fail(`closed before joining (${code})`);
      });
    });
  }

  send(text) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  joined() {
    this.state = 'joined';
    if (this.settle) this.settle(true);
  }

  fail(why) {
    this.run.noteError(`socket ${this.index}: ${why}`);
    if (this.settle) {
      this.run.connectErrors += 1;
      this.state = 'failed';
      this.ws?.terminate();
      this.settle(false);
    }
  }

  errorFrame(why) {
    this.run.errorFrames += 1;
    this.run.noteError(`socket ${this.index}: ${why}`);
  }
}

class Run {
  constructor(opts) {
    this.opts = opts;
    this.kind = KINDS[opts.server];
    this.sessions = [];
    this.conns = [];
    // Publishes: the warm-up's first (not measured: V8 compiles the hot paths), then
    // the measuring window's.
    this.warmupCount = Math.round((opts.rate * opts.warmupMs) / 1000);
    this.total = this.warmupCount + Math.round((opts.rate * opts.durationMs) / 1000);
    this.latency = new Histogram();
    this.publishCall = new Histogram();
    this.loopDelay = monitorEventLoopDelay({ resolution: 10 });
    this.delivered = 0;
    this.duplicates = 0;
    this.connectErrors = 0;
    this.errorFrames = 0;
    this.disconnects = 0;
    this.publishErrors = 0;
    this.published = 0;
    this.publishedWarmup = 0;
    this.maxLagNs = 0;
    this.firstError = null;
    this.closing = false;
    this.measureStartNs = null;
    this.publishEndNs = null;
    this.drainedNs = null;
    this.cpuAtMeasure = null;
    this.cpuAtDrained = null;
    this.acceptedPerSession = [];
    this.aborted = null;
  }

  noteError(text) {
    if (this.firstError === null) this.firstError = text;
  }

  deliver(conn, payload) {
    const now = nowNs();
    const k = payload.k;
    if (!Number.isInteger(k) || k < 0 || k >= this.total) return;
    const bit = 1 << (k & 7);
    if (conn.seen[k >> 3] & bit) {
      this.duplicates += 1;
      return;
    }
    conn.seen[k >> 3] |= bit;
    conn.received += 1;
    if (k >= this.warmupCount) {
      this.delivered += 1;
      this.latency.record((now - payload.sent_ns) / 1000);
    }
  }

  async connectAll() {
    const { connections, sessions, connectConcurrency } = this.opts;
    this.conns = Array.from({ length: connections }, (_, i) => new Conn(this, i, i % sessions));
    let next = 0;
    let joined = 0;
    const worker = async () => {
      while (next < connections) {
        const conn = this.conns[next];
        next += 1;
        if (await conn.open()) joined += 1;
      }
    };
    await Promise.all(Array.from({ length: Math.min(connectConcurrency, connections) }, worker));
    return joined;
  }

  /** Publish every event on schedule (open loop: `k` is due at start + k / rate). */
  publishAll() {
    const { opts, kind } = this;
    const agent = new http.Agent({
      keepAlive: true,
      maxSockets: opts.publishSockets,
      maxFreeSockets: opts.publishSockets,
      scheduling: 'fifo',
    });
    this.agent = agent;
    this.acceptedPerSession = new Array(this.sessions.length).fill(0);
    const intervalNs = 1e9 / opts.rate;
    // A `pad` that brings the payload's JSON to about --payload-bytes.
    const bare = JSON.stringify({ sent_ns: 1e11, k: this.total, pad: '' }).length;
    const pad = 'x'.repeat(Math.max(0, opts.payloadBytes - bare));
    const startNs = nowNs();
    let next = 0;
    let inFlight = 0;
    let timer = null;
    return new Promise((resolve) => {
      const finished = () => {
        if (next >= this.total && inFlight === 0) {
          // A run without a measuring window (--duration 0) still reports its phases.
          if (this.measureStartNs === null) this.startMeasuring();
          this.publishEndNs = nowNs();
          resolve();
        }
      };
      const answered = (k, session, sentNs, ok, why) => {
        inFlight -= 1;
        const measured = k >= this.warmupCount;
        if (ok) {
          this.acceptedPerSession[session] += 1;
          if (measured) {
            this.published += 1;
            this.publishCall.record((nowNs() - sentNs) / 1000);
          } else {
            this.publishedWarmup += 1;
          }
        } else {
          this.publishErrors += 1;
          this.noteError(`publish: ${why}`);
        }
        if (timer === null) pump();
        finished();
      };
      const send = (k) => {
        const session = k % this.sessions.length;
        const payload = { sent_ns: 0, k, pad };
        if (k === this.warmupCount) this.startMeasuring();
        payload.sent_ns = nowNs();
        const request = kind.publishRequest(this.sessions[session], payload, opts.key);
        let settled = false;
        const settle = (ok, why) => {
          if (settled) return;
          settled = true;
          answered(k, session, payload.sent_ns, ok, why);
        };
        const req = http.request(
          {
            agent,
            host: opts.host,
            port: opts.port,
            method: 'POST',
            path: request.path,
            headers: {
              ...request.headers,
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(request.body),
            },
          },
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (chunk) => {
              if (body.length < 512) body += chunk;
            });
            res.on('end', () => {
              const ok = kind.accepted(res.statusCode);
              settle(ok, ok ? null : `HTTP ${res.statusCode}: ${body.slice(0, 200)}`);
            });
            res.on('error', (e) => settle(false, e.message));
          },
        );
        req.setTimeout(PUBLISH_TIMEOUT_MS, () => req.destroy(new Error('no answer in 10 s')));
        req.on('error', (e) => settle(false, e.message));
        req.end(request.body);
      };
      const pump = () => {
        timer = null;
        const now = nowNs();
        while (next < this.total && inFlight < opts.maxInFlight) {
          const due = startNs + next * intervalNs;
          if (due > now) {
            timer = setTimeout(pump, Math.max(0, Math.floor((due - now) / 1e6)));
            return;
          }
          // How far behind schedule this publish goes out: the client's own limit.
          if (next >= this.warmupCount) this.maxLagNs = Math.max(this.maxLagNs, now - due);
          inFlight += 1;
          send(next);
          next += 1;
        }
        // At the in-flight bound: the next answer pumps again.
      };
      if (this.total === 0) {
        this.startMeasuring();
        this.publishEndNs = nowNs();
        resolve();
        return;
      }
      pump();
    });
  }

  startMeasuring() {
    this.measureStartNs = nowNs();
    this.cpuAtMeasure = process.cpuUsage();
    this.loopDelay.enable();
    phase('measuring');
  }

  /** Wait until every joined socket has every accepted event, or the drain ran out. */
  async drain() {
    const deadline = nowNs() + this.opts.drainMs * 1e6;
    while (nowNs() < deadline && !this.complete()) {
      await new Promise((r) => setTimeout(r, 20));
    }
    this.drainedNs = nowNs();
    this.cpuAtDrained = process.cpuUsage(this.cpuAtMeasure ?? undefined);
    this.loopDelay.disable();
    phase('drained');
  }

  complete() {
    return this.conns.every(
      (c) => c.state !== 'joined' || c.received >= this.acceptedPerSession[c.sessionIndex],
    );
  }

  report() {
    let lost = 0;
    let membersChecked = 0;
    let membersShort = 0;
    let connected = 0;
    let connectedAtEnd = 0;
    for (const c of this.conns) {
      if (c.state === 'joined' || c.state === 'closed') connected += 1;
      if (c.state === 'joined') connectedAtEnd += 1;
      if (c.state !== 'joined' && c.state !== 'closed') continue;
      membersChecked += 1;
      const want = this.acceptedPerSession[c.sessionIndex] ?? 0;
      if (c.received < want) {
        lost += want - c.received;
        membersShort += 1;
      }
    }
    const sec = (ns) => ns / 1e9;
    const start = this.measureStartNs ?? nowNs();
    const publishSecs = sec((this.publishEndNs ?? nowNs()) - start);
    const windowSecs = sec((this.drainedNs ?? nowNs()) - start);
    const cpu = this.cpuAtDrained ?? process.cpuUsage(this.cpuAtMeasure ?? undefined);
    const delay = this.loopDelay;
    const o = this.opts;
    return {
      client: 'node',
      server: o.server,
      node_version: process.version,
      aborted: this.aborted,
      params: {
        addr: o.addr,
        connections: o.connections,
        sessions: o.sessions,
        rate: o.rate,
        warmup_secs: o.warmupMs / 1000,
        duration_secs: o.durationMs / 1000,
        drain_secs: o.drainMs / 1000,
        publish_sockets: o.publishSockets,
        max_in_flight: o.maxInFlight,
        payload_bytes: o.payloadBytes,
        source_addresses: o.sourceAddresses,
      },
      connections: {
        target: o.connections,
        connected,
        failed: o.connections - connected,
        connected_at_end: connectedAtEnd,
        sessions: this.sessions.length,
      },
      publish: {
        published: this.published,
        warmup_published: this.publishedWarmup,
        errors: this.publishErrors,
        elapsed_secs: publishSecs,
        achieved_rate: this.published / Math.max(publishSecs, 1e-9),
        max_lag_ms: this.maxLagNs / 1e6,
      },
      window_secs: windowSecs,
      delivered: this.delivered,
      delivered_per_sec: this.delivered / Math.max(publishSecs, 1e-9),
      latency_us: this.latency.summary(),
      publish_call_us: this.publishCall.summary(),
      errors: {
        connect: this.connectErrors,
        error_frames: this.errorFrames,
        publish: this.publishErrors,
        first: this.firstError,
      },
      disconnects: this.disconnects,
      delivery_check: {
        members_checked: membersChecked,
        members_short: membersShort,
        lost,
        duplicates: this.duplicates,
      },
      client_process: {
        cpu_secs: (cpu.user + cpu.system) / 1e6,
        system_secs: cpu.system / 1e6,
        rss_kib: Math.round(process.memoryUsage.rss() / 1024),
        event_loop_delay_us: {
          p50: Math.round(delay.percentile(50) / 1000),
          p99: Math.round(delay.percentile(99) / 1000),
          max: Math.round(delay.max / 1000),
        },
      },
    };
  }

  /** Print the report and exit (sockets are dropped, not closed politely). */
  finish(code) {
    this.closing = true;
    for (const c of this.conns) c.ws?.terminate();
    this.agent?.destroy();
    process.stdout.write(`${JSON.stringify(this.report())}\n`, () => process.exit(code));
  }
}

async function main() {
  let opts;
  try {
    opts = readOptions(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`node-client: ${e.message}\n`);
    process.exit(2);
  }
  const run = new Run(opts);
  const guard = setTimeout(() => {
    run.aborted = `the run exceeded --max-runtime ${opts.maxRuntimeMs / 1000} s`;
    log(run.aborted);
    run.finish(1);
  }, opts.maxRuntimeMs);
  guard.unref();
  try {
    run.sessions = await run.kind.prepare(run);
    const started = Date.now();
    const joined = await run.connectAll();
    log(`${joined} of ${opts.connections} sockets joined in ${Date.now() - started} ms`);
    phase('ready', { connected: joined, failed: opts.connections - joined });
    if (joined === 0) {
      run.aborted = 'no socket joined';
      run.finish(1);
      return;
    }
    await run.publishAll();
    await run.drain();
    run.finish(0);
  } catch (e) {
    run.aborted = e.message;
    run.noteError(e.message);
    log(e.message);
    run.finish(1);
  }
}

main();
