// A tiny stand-in for the socketioxide peer server, speaking exactly its contract
// (Engine.IO v4 / Socket.IO v5 over raw WebSocket, `POST /publish`), for the tests.

import http from 'node:http';
import { WebSocketServer } from 'ws';

export function startFakeSocketIo({ pingIntervalMs = 200 } = {}) {
  const rooms = new Map();
  const stats = { pongs: 0, published: 0, badFrames: [] };
  const server = http.createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/publish') {
      res.writeHead(404).end();
      return;
    }
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const { room, data } = JSON.parse(body);
      const frame = `42${JSON.stringify(['event', data])}`;
      for (const ws of rooms.get(room) ?? []) ws.send(frame);
      stats.published += 1;
      res.writeHead(202, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    if (!req.url.startsWith('/socket.io/?EIO=4&transport=websocket')) {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(`0${JSON.stringify({ sid: 'e1', upgrades: [], pingInterval: pingIntervalMs, pingTimeout: 5000, maxPayload: 1e6 })}`);
      const ping = setInterval(() => ws.send('2'), pingIntervalMs);
      ws.on('close', () => {
        clearInterval(ping);
        for (const members of rooms.values()) members.delete(ws);
      });
      ws.on('message', (data) => {
        const text = data.toString();
        if (text === '3') stats.pongs += 1;
        else if (text === '40') ws.send('40{"sid":"s1"}');
        else if (text.startsWith('421')) {
          const [name, room] = JSON.parse(text.slice(3));
          if (name !== 'join') stats.badFrames.push(text);
          if (!rooms.has(room)) rooms.set(room, new Set());
          rooms.get(room).add(ws);
          ws.send('431["ok"]');
        } else stats.badFrames.push(text);
      });
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        addr: `127.0.0.1:${server.address().port}`,
        stats,
        close: () => {
          for (const ws of wss.clients) ws.terminate();
          server.close();
        },
      });
    });
  });
}
