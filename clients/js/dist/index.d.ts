// The API of @switchboard/client (dist/index.js, built from widget/src/client.js and
// widget/src/fallback.js). Hand-written for the class and its options only: every wire
// frame type comes from ./frames.d.ts, generated from docs/schemas/ (npm run generate).

import type {
  ClientFrame,
  ErrorCode,
  ErrorServerFrame,
  EventFrame,
  GoawayServerFrame,
  Handoff,
  Limits,
  PresenceChangedServerFrame,
  PresenceServerFrame,
  Principal,
  ServerFrame,
  SessionExportedServerFrame,
  SessionListedServerFrame,
  SessionSummary,
  ToolDecidedServerFrame,
  TypingServerFrame,
  WelcomeServerFrame,
} from './frames.js';

export type * from './frames.js';

/** What the client needs of a WebSocket: the browser's, or the `ws` package's in Node.js. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: any }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: `globalThis.WebSocket`, or `import WebSocket from 'ws'`. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Where the session id, key and unsent messages are kept (`localStorage` fits). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface Backoff {
  initialMs: number;
  maxMs: number;
  factor: number;
}

export interface SwitchboardClientOptions {
  /** The gateway's base URL: `https://chat.example.com`, `ws://127.0.0.1:8080`, … */
  gateway: string;
  /** A JWT; without `tokenProvider` it is never refreshed. */
  token?: string;
  /** Returns a fresh JWT: called before each connection and ahead of each token's `exp`. */
  tokenProvider?: () => string | Promise<string>;
  /** Keeps the session (and unsent messages) across reloads; `null` (default): memory only. */
  storage?: StorageLike | null;
  /** Which conversation this is, per gateway (default `default`). */
  storageKey?: string;
  backoff?: Partial<Backoff>;
  /** Sent with `session.create`. */
  metadata?: Record<string, unknown>;
  /** The org's named assistant new conversations talk to. */
  assistant?: string;
  /** A WebSocket implementation; default `globalThis.WebSocket` (in Node.js 20 pass `ws`). */
  WebSocket?: WebSocketConstructor;
  /** Carry on over HTTP (SSE and REST) when WebSockets cannot connect but HTTP can (default true). */
  fallback?: boolean;
  /** On HTTP, how often to try a WebSocket again (default 60 000 ms). */
  websocketProbeMs?: number;
  /** A fetch implementation for the HTTP transport (default `globalThis.fetch`). */
  fetch?: typeof fetch;
}

export type ClientState = 'idle' | 'connecting' | 'online' | 'reconnecting' | 'offline' | 'unauthorized' | 'stopped';

export interface StatusDetail {
  state: ClientState;
  attempt: number;
  retryInMs: number | null;
  reason: string | null;
}

export interface SessionDetail {
  session_id: string;
  created: boolean;
  resumed: boolean;
  recovered: boolean;
  last_seq?: number;
}

export interface OutboxDetail {
  client_message_id: string;
  text: string;
  state: 'queued' | 'accepted' | 'failed';
  message_id?: string;
  seq?: number;
  error?: { code: ErrorCode | string; message: string };
}

/** An `error` frame, or a client-side failure (`token_provider`, `connect`). */
export type ErrorDetail = ErrorServerFrame | { code: 'token_provider' | 'connect'; message: string };

/** The `detail` of each event the client dispatches. */
export interface SwitchboardClientEventMap {
  status: StatusDetail;
  welcome: WelcomeServerFrame;
  session: SessionDetail;
  /** Each session event once, in `seq` order; user and org stream events (with `stream`). */
  event: EventFrame;
  reset: { reason?: string };
  outbox: OutboxDetail;
  presence: PresenceServerFrame | PresenceChangedServerFrame;
  typing: TypingServerFrame;
  'tool.decided': ToolDecidedServerFrame;
  error: ErrorDetail;
  goaway: GoawayServerFrame;
}

export type SwitchboardClientEvent<K extends keyof SwitchboardClientEventMap> = CustomEvent<SwitchboardClientEventMap[K]>;

/** An Error with the gateway's error `code` (or `disconnected`, `busy`, `stopped`). */
export interface SwitchboardError extends Error {
  code: ErrorCode | 'disconnected' | 'busy' | 'stopped' | string;
}

export interface Accepted {
  message_id: string;
  seq: number;
  client_message_id: string;
}

export class SwitchboardClient extends EventTarget {
  constructor(options: SwitchboardClientOptions);
  readonly state: ClientState;
  readonly sessionId: string | null;
  readonly transport: 'websocket' | 'http';
  readonly lastSeq: number | null;
  readonly principal: Principal | null;
  readonly limits: Limits | null;
  readonly outbox: { client_message_id: string; text: string }[];
  readonly signedIn: boolean;

  start(): void;
  stop(): void;
  reconnectNow(): void;
  send(text: string, options?: { clientMessageId?: string }): Promise<Accepted>;
  cancelTurn(turnId: string): string | boolean;
  typing(isTyping: boolean): boolean;
  decideTool(callId: string, approved: boolean): string | boolean;
  setToken(token: string): void;
  forgetSession(): void;
  requestHandoff(reason?: string): Promise<Handoff>;
  newSession(): Promise<{ session_id: string; seq: number; session_key?: string | null }>;
  openSession(sessionId: string): Promise<{ session_id: string; last_seq: number; recovered: boolean }>;
  listSessions(options?: { state?: 'active' | 'archived'; cursor?: string; limit?: number }): Promise<SessionListedServerFrame>;
  updateSession(sessionId: string, changes?: { title?: string; state?: 'active' | 'archived' }): Promise<SessionSummary>;
  deleteSession(sessionId: string): Promise<void>;
  exportSession(sessionId: string, format?: 'json' | 'markdown'): Promise<SessionExportedServerFrame>;

  addEventListener<K extends keyof SwitchboardClientEventMap>(
    type: K,
    listener: (event: SwitchboardClientEvent<K>) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof SwitchboardClientEventMap>(
    type: K,
    listener: (event: SwitchboardClientEvent<K>) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

/** Close codes the client acts on (docs/protocol.md §5.4). */
export const CloseCodes: Readonly<{
  NORMAL: 1000;
  TOO_BIG: 1009;
  DRAINING: 1012;
  HEARTBEAT_TIMEOUT: 4000;
  SLOW_CONSUMER: 4008;
  TOO_MANY_BAD_FRAMES: 4029;
  UNAUTHORIZED: 4401;
}>;
export const DEFAULT_BACKOFF: Readonly<Backoff>;
export const FALLBACK_AFTER_FAILURES: number;
export const DEFAULT_WEBSOCKET_PROBE_MS: number;
export function backoffDelay(attempt: number, backoff?: Backoff, random?: () => number): number;
export function retryDelay(attempt: number, backoff?: Backoff, retryAfterMs?: number, random?: () => number): number;
export function websocketUrl(gateway: string, token?: string | null): string;
export function tokenExpiry(token: string): number | null;
export function refreshDelay(expiresAtMs: number, nowMs: number): number;

// The HTTP fallback transport (widget/src/fallback.js), used by the client by itself.
export function httpBaseUrl(wsUrl: string): string;
export function reachable(base: string, fetchImpl: typeof fetch): Promise<boolean>;
export function websocketOpens(url: string, WebSocketImpl: WebSocketConstructor): Promise<boolean>;
export function httpFallbackSocket(base: string, options: { token?: string | null; fetch: typeof fetch }): WebSocketLike;
export function readEventStream(body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: string }>;

/** Frames a client sends and receives, for code that speaks the protocol itself. */
export type AnyClientFrame = ClientFrame;
export type AnyServerFrame = ServerFrame | EventFrame;
