// The API of @switchboard/react (index.js). Hand-written: a thin layer over the
// client's options and the generated frame types of @switchboard/client.

import type {
  Accepted,
  Handoff,
  HandoffState,
  Role,
  Source,
  Staffer,
  SwitchboardClient,
  SwitchboardClientOptions,
  TurnStatus,
} from '@switchboard/client';

/** SwitchboardClient's options. */
export type UseConversationOptions = SwitchboardClientOptions;

/**
 * `connecting` (first connection), `open` (over a WebSocket), `fallback` (over HTTP:
 * SSE and REST, while WebSockets cannot connect), `reconnecting` (waiting to connect
 * again, or the browser is offline), `closed` (unmounted, or the token was refused).
 */
export type ConversationStatus = 'connecting' | 'open' | 'fallback' | 'reconnecting' | 'closed';

/** A user's message: `sending` → `sent` (or `failed`); an assistant's: `streaming` → how its turn ended; others: `sent`. */
export type MessageStatus = 'sending' | 'sent' | 'failed' | 'streaming' | TurnStatus;

export interface ConversationError {
  /** The gateway's error code (`rate_limited`, `forbidden`, …), `unauthorized`, a client code, or null. */
  code: string | null;
  message: string;
}

export interface ConversationMessage {
  /** Stable while the message lives (a React key): the `client_message_id`, `turn_id` or `message_id`. */
  id: string;
  /** The gateway's `message_id` (null until the message is accepted, or while an answer streams). */
  messageId: string | null;
  role: Role;
  /** A user's `user_id` (null when anonymous or not yet sent), `assistant` or the named assistant, an operator's name. */
  author: string | null;
  /** The whole text so far: an answer's grows with each `turn.delta`. */
  text: string;
  status: MessageStatus;
  /** The turn of an assistant's answer. */
  turnId?: string;
  /** The documents an assistant's answer drew on. */
  sources?: Source[];
  /** The `client_message_id` of a message sent from this client. */
  clientMessageId?: string;
  /** Why a message was refused, or why an answer failed. */
  error: ConversationError | null;
}

export interface ConversationHandoff {
  state: HandoffState;
  /** Who holds it (`human`) or released it, with `name` when their token has one. */
  operator: Staffer | null;
  reason: string | null;
  /** What to show the customer while `waiting` (the org's waiting message). */
  notice: string | null;
}

export interface Conversation {
  /** The transcript in order: user, assistant (the answer in progress included), operator and system messages. */
  messages: readonly ConversationMessage[];
  /** Whether an answer is streaming. */
  streaming: boolean;
  /** The streaming answer's turn, or null. */
  turnId: string | null;
  handoff: ConversationHandoff;
  status: ConversationStatus;
  /** The last error, or null; a message accepted afterwards clears it. */
  error: ConversationError | null;
  /** The conversation's session, once there is one. */
  sessionId: string | null;
  /** Send a user message; it shows at once, resolves once the gateway accepted it. */
  send(text: string): Promise<Accepted>;
  /** Cancel the streaming answer (`turn.cancel`); false when none streams or the socket is down. */
  stop(): boolean;
  /** Ask for a person (`handoff.request`); resolves with the conversation's handoff. */
  requestHuman(reason?: string): Promise<Handoff>;
  /** The underlying client, for everything else (typing, tool decisions, conversation lists). */
  client: SwitchboardClient;
}

export function useConversation(options: UseConversationOptions): Conversation;
