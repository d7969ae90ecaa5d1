// The entry of the one-file bundle served at /widget.js: defines <switchboard-chat>
// and exposes the client for pages that build their own UI (`window.Switchboard`).

import { SwitchboardClient, backoffDelay, tokenExpiry, websocketUrl } from './client.js';
import { renderMarkdown, safeUrl } from './markdown.js';
import { SwitchboardChat, defineSwitchboardChat } from './widget.js';

export const VERSION = '0.1.0';

// The gateway that served this script is the default gateway of every widget on the
// page, so `<script src="https://chat.example.com/widget.js">` needs no other setting.
const script = typeof document !== 'undefined' ? document.currentScript : null;
const scriptOrigin = script && script.src ? new URL(script.src).origin : null;

defineSwitchboardChat({ gateway: scriptOrigin });

globalThis.Switchboard = Object.freeze({
  VERSION,
  Client: SwitchboardClient,
  Chat: SwitchboardChat,
  renderMarkdown,
  safeUrl,
  backoffDelay,
  tokenExpiry,
  websocketUrl,
});
