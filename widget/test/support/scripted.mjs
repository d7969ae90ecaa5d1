// A scripted stand-in for the gateway's socket, for testing the client without a
// browser or a gateway: the test reads what the client sent and answers for the server.

/** A WebSocket stand-in the test drives: it records what the client sends. */
export class ScriptedSocket {
  static all = [];
  /** The `principal` of the next connections' `welcome`. */
  static principal = { anonymous: true };
  constructor(url, protocol) {
    this.url = url;
    this.protocol = protocol;
    this.readyState = 0;
    this.sent = [];
    ScriptedSocket.all.push(this);
    setTimeout(() => {
      this.readyState = 1;
      this.receive({ type: 'welcome', protocol: 1, heartbeat_ms: 25000, principal: ScriptedSocket.principal, limits: { max_text_chars: 8000 } });
    }, 0);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
  }
  receive(frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  /** The server closes the connection. */
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }
  frames(type) {
    return this.sent.filter((f) => f.type === type);
  }
}

export class MemoryStorage {
  constructor() {
    this.map = new Map();
  }
  getItem(key) {
    return this.map.has(key) ? this.map.get(key) : null;
  }
  setItem(key, value) {
    this.map.set(key, String(value));
  }
  removeItem(key) {
    this.map.delete(key);
  }
}


export function until(predicate, what, timeoutMs = 2000) {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const check = () => {
      const value = predicate();
      if (value) return resolve(value);
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(check, 2);
    };
    check();
  });
}
