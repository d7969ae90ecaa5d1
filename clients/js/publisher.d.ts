// Types of publisher.js: the /v1 helpers (docs/http-api.md). The bodies follow
// docs/openapi.json (PublishRequest, CreateSession, ChatRequest, ChatReply).

import type { ErrorCode, TurnStatus, Usage, Source } from './dist/frames.js';

export interface ApiOptions {
  /** The gateway's base URL, e.g. `https://chat.example.com`. */
  gateway: string;
  /** A publisher or admin API key (`Authorization: Bearer`). */
  key?: string;
  /** A JWT (a user's, or one with role `publisher`). */
  token?: string;
  /** An anonymous session's key (`Switchboard-Session-Key`). */
  sessionKey?: string;
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

export type PublishTarget = { session: string } | { user: string } | { org: string };

export interface PublishOptions {
  /** The same key for the same target within 24 h appends nothing and returns the first `seq`. */
  idempotencyKey?: string;
  /** The org of a `user` target (publisher keys). */
  orgId?: string;
  /** Session targets: keep the event in the transcript (replayed, exported). */
  durable?: boolean;
}

export interface SessionCreated {
  session_id: string;
  seq: number;
  session_key?: string | null;
  assistant?: string | null;
}

export interface ChatOptions {
  sessionId?: string;
  clientMessageId?: string;
  /** How long the gateway waits before answering 202 (1–120 000 ms, default 30 000). */
  timeoutMs?: number;
  metadata?: Record<string, unknown>;
  assistant?: string;
  /** How long `chat` follows a 202's `poll` route (default 120 000 ms). */
  waitMs?: number;
  pollMs?: number;
}

export interface ChatReply {
  session_id: string;
  session_key?: string | null;
  message_id?: string;
  message_seq?: number;
  turn_id?: string;
  status: TurnStatus | 'running' | 'queued';
  seq?: number;
  text?: string;
  usage?: Usage | null;
  sources?: Source[] | null;
  error?: string | null;
  code?: string | null;
  assistant?: string | null;
  poll?: string;
  [field: string]: unknown;
}

export class SwitchboardApiError extends Error {
  readonly status: number;
  readonly code: ErrorCode | string | null;
  readonly body: unknown;
}

export function publish(options: ApiOptions, target: PublishTarget, name: string, data?: unknown, extra?: PublishOptions): Promise<{ seq: number }>;
export function createSession(options: ApiOptions, extra?: { title?: string; metadata?: Record<string, unknown>; assistant?: string }): Promise<SessionCreated>;
export function chat(options: ApiOptions, text: string, extra?: ChatOptions): Promise<ChatReply>;

export interface Publisher {
  publish(target: PublishTarget, name: string, data?: unknown, extra?: PublishOptions): Promise<{ seq: number }>;
  createSession(extra?: { title?: string; metadata?: Record<string, unknown>; assistant?: string }): Promise<SessionCreated>;
  chat(text: string, extra?: ChatOptions): Promise<ChatReply>;
}
export function createPublisher(options: ApiOptions): Publisher;
