// A reverse proxy in front of a gateway that passes HTTP through — streamed responses
// too — but refuses every WebSocket upgrade with 502, like the corporate proxies that
// break upgrades. It records the event-stream requests it forwards and can cut them
// (`dropStreams`), to test resuming.

import { createServer, request as forward } from 'node:http';

export class UpgradeBreakingProxy {
  static async start(target) {
    const proxy = new UpgradeBreakingProxy();
    const upstream = new URL(target);
    proxy.upgradesRefused = 0;
    proxy.streamRequests = [];
    proxy.openStreams = new Set();
    proxy.server = createServer((incoming, outgoing) => {
      const isStream = /\/stream(\?|$)/.test(incoming.url);
      if (isStream) proxy.streamRequests.push({ url: incoming.url, headers: { ...incoming.headers } });
      const upstreamRequest = forward(
        { host: upstream.hostname, port: upstream.port, method: incoming.method, path: incoming.url, headers: incoming.headers },
        (response) => {
          outgoing.writeHead(response.statusCode, response.headers);
          response.pipe(outgoing);
        },
      );
      upstreamRequest.on('error', () => outgoing.destroy());
      incoming.pipe(upstreamRequest);
      if (isStream) {
        const pair = { incoming, upstreamRequest };
        proxy.openStreams.add(pair);
        outgoing.on('close', () => proxy.openStreams.delete(pair));
      }
    });
    proxy.server.on('upgrade', (incoming, socket) => {
      proxy.upgradesRefused += 1;
      socket.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    });
    await new Promise((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.url = `http://127.0.0.1:${proxy.server.address().port}`;
    return proxy;
  }

  /** Cut every open event stream, as a flaky network would: both sides, abruptly. */
  dropStreams() {
    const dropped = this.openStreams.size;
    for (const { incoming, upstreamRequest } of this.openStreams) {
      upstreamRequest.destroy();
      incoming.socket.destroy();
    }
    this.openStreams.clear();
    return dropped;
  }

  close() {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(resolve));
  }
}
