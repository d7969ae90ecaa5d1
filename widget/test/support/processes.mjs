// Real processes for the browser tests: the gateway binary that `cargo test` built,
// redis-server and PostgreSQL, each on a free 127.0.0.1 port, each killed when the
// test ends.

import { spawn, spawnSync } from 'node:child_process';
import { chownSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, '../../..');
export const ARTIFACTS = resolve(process.env.BROWSER_ARTIFACTS || join(REPO, 'target/browser-artifacts'));
mkdirSync(ARTIFACTS, { recursive: true });

const TARGET = process.env.CARGO_TARGET_DIR ? resolve(REPO, process.env.CARGO_TARGET_DIR) : join(REPO, 'target');
export const GATEWAY_BIN = process.env.SWITCHBOARD_BIN || join(TARGET, 'debug/switchboard');

const STARTUP_MS = 30_000;
const live = new Set();
const dataDirs = [];

// A test that fails or times out must not leave processes (or data) behind.
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

/** A free TCP port on 127.0.0.1 (the OS picks; the listener is closed at once). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

let logNumber = 0;

/**
 * A running `switchboard serve`. `start()` binds `127.0.0.1:0` unless `port` is given
 * (a restart reuses the port, so the browser reconnects to the same URL). Each gateway
 * keeps its conversations in a fresh temporary `--data-dir` of its own (kept across
 * its restarts, removed when the tests end) unless its args name one.
 */
export class Gateway {
  constructor(args = [], { name = 'gateway', env = {} } = {}) {
    this.args = args;
    this.name = name;
    this.env = env;
    this.child = null;
    this.port = null;
  }

  static async start(args = [], options = {}) {
    const gateway = new Gateway(args, options);
    await gateway.start();
    return gateway;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = this.port ?? 0) {
    const env = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', ...this.env };
    for (const key of Object.keys(env)) {
      if (key.startsWith('SWITCHBOARD_') && !(key in this.env)) delete env[key];
    }
    if (!this.args.includes('--data-dir') && !('SWITCHBOARD_DATA_DIR' in this.env)) {
      if (!this.dataDir) {
        this.dataDir = mkdtempSync(join(tmpdir(), `switchboard-${this.name}-`));
        dataDirs.push(this.dataDir);
      }
      env.SWITCHBOARD_DATA_DIR = this.dataDir;
    }
    logNumber += 1;
    this.logPath = join(ARTIFACTS, `${this.name}-${process.pid}-${logNumber}.log`);
    const log = createWriteStream(this.logPath);
    const child = spawn(GATEWAY_BIN, ['serve', '--bind', `127.0.0.1:${port}`, ...this.args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    live.add(child);
    child.stderr.pipe(log);
    this.exited = new Promise((resolveExit) => {
      child.on('exit', (code, signal) => {
        live.delete(child);
        resolveExit({ code, signal });
      });
    });
    const address = await withTimeout(
      new Promise((resolveAddress, reject) => {
        let buffered = '';
        child.stdout.on('data', (chunk) => {
          buffered += chunk;
          const match = /listening on http:\/\/(\S+)/.exec(buffered);
          if (match) resolveAddress(match[1]);
        });
        child.on('error', reject);
        child.on('exit', (code) => reject(new Error(`${GATEWAY_BIN} exited with ${code} before listening; see ${this.logPath}`)));
      }),
      STARTUP_MS,
      `${this.name} to print "listening on"`,
    );
    this.port = Number(address.split(':').pop());
    return this;
  }

  /** SIGTERM (drain), then wait for the exit. Returns `{code, signal}`. */
  async terminate(timeoutMs = 40_000) {
    if (!this.child || this.child.exitCode !== null) return this.exited;
    this.child.kill('SIGTERM');
    return withTimeout(this.exited, timeoutMs, `${this.name} to drain and exit`);
  }

  kill() {
    if (this.child && this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

/** A throwaway `redis-server` (no persistence) on a free port. */
export class Redis {
  static async start() {
    const redis = new Redis();
    redis.port = await freePort();
    const child = spawn('redis-server', ['--port', String(redis.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    redis.child = child;
    live.add(child);
    child.on('exit', () => live.delete(child));
    const deadline = Date.now() + STARTUP_MS;
    while (!(await redis.#answersPing())) {
      if (Date.now() > deadline) throw new Error('redis-server did not answer PING');
      await new Promise((r) => setTimeout(r, 50));
    }
    return redis;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  #answersPing() {
    return new Promise((resolvePing) => {
      const socket = connect(this.port, '127.0.0.1');
      socket.setTimeout(500);
      socket.on('connect', () => socket.write('PING\r\n'));
      socket.on('data', (data) => {
        resolvePing(data.toString().startsWith('+PONG'));
        socket.destroy();
      });
      socket.on('error', () => resolvePing(false));
      socket.on('timeout', () => {
        resolvePing(false);
        socket.destroy();
      });
    });
  }

  kill() {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

/**
 * A throwaway PostgreSQL server on a free port: a fresh cluster made by `initdb`
 * (Debian's `postgresql` package, newest version under /usr/lib/postgresql, or
 * `$SWITCHBOARD_POSTGRES_BIN_DIR`), trusting local connections as user `postgres`,
 * without fsync. PostgreSQL refuses to run as root, so under root both run as the
 * `postgres` system user (as the Rust testkit does).
 */
export class Postgres {
  static async start() {
    const pg = new Postgres();
    const bin = postgresBinDir();
    pg.port = await freePort();
    pg.dir = mkdtempSync(join(tmpdir(), 'switchboard-pg-'));
    dataDirs.push(pg.dir);
    const cluster = join(pg.dir, 'cluster');
    const owner = process.getuid?.() === 0 ? systemUser('postgres') : null;
    if (owner) chownSync(pg.dir, owner.uid, owner.gid);
    const as = owner ? { uid: owner.uid, gid: owner.gid } : {};
    const initdb = spawnSync(
      join(bin, 'initdb'),
      ['--auth=trust', '--username=postgres', '--encoding=UTF8', '--locale=C.UTF-8', '--no-sync', '--no-instructions', '--pgdata', cluster],
      { cwd: pg.dir, encoding: 'utf8', ...as },
    );
    if (initdb.status !== 0) throw new Error(`initdb failed: ${initdb.stderr || initdb.error}`);
    pg.logPath = join(ARTIFACTS, `postgres-${process.pid}-${pg.port}.log`);
    const log = createWriteStream(pg.logPath);
    const args = ['-D', cluster, '-p', String(pg.port), '-h', '127.0.0.1', '-k', pg.dir, '-F', '-c', 'full_page_writes=off', '-c', 'max_connections=50'];
    const child = spawn(join(bin, 'postgres'), args, { cwd: pg.dir, stdio: ['ignore', 'pipe', 'pipe'], ...as });
    pg.child = child;
    live.add(child);
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    child.on('exit', () => live.delete(child));
    await withTimeout(
      new Promise((resolveReady, reject) => {
        let buffered = '';
        child.stderr.on('data', (chunk) => {
          buffered += chunk;
          if (buffered.includes('ready to accept connections')) resolveReady();
        });
        child.on('exit', (code) => reject(new Error(`postgres exited with ${code}; see ${pg.logPath}`)));
      }),
      STARTUP_MS,
      'postgres to accept connections',
    );
    return pg;
  }

  get url() {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  kill() {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

function postgresBinDir() {
  if (process.env.SWITCHBOARD_POSTGRES_BIN_DIR) return process.env.SWITCHBOARD_POSTGRES_BIN_DIR;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin/initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions.length) throw new Error('PostgreSQL is not installed (apt-get install postgresql), or set SWITCHBOARD_POSTGRES_BIN_DIR');
  return join(root, versions[0], 'bin');
}

function systemUser(name) {
  const read = (flag) => Number(spawnSync('id', [flag, name], { encoding: 'utf8' }).stdout.trim());
  const uid = read('-u');
  const gid = read('-g');
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid <= 0) throw new Error(`no system user ${name} to run PostgreSQL as`);
  return { uid, gid };
}
