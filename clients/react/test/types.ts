// The declarations in use, checked by `tsc --noEmit` (npm run typecheck): the hook's
// result is typed from @switchboard/client's frame types, and a misuse is an error.

import { useConversation } from '@switchboard/react';
import type { Conversation, ConversationMessage, ConversationStatus, MessageStatus } from '@switchboard/react';
import type { HandoffState, Source } from '@switchboard/client';

export function summary(): string {
  const chat: Conversation = useConversation({
    gateway: 'https://chat.example.com',
    tokenProvider: async () => 'a.jwt.token',
    storageKey: 'support',
  });
  const last: ConversationMessage | undefined = chat.messages.at(-1);
  const status: MessageStatus | undefined = last?.status;
  const sources: Source[] = last?.sources ?? [];
  const held: HandoffState = chat.handoff.state;
  const operator: string | null | undefined = chat.handoff.operator?.name;
  const connection: ConversationStatus = chat.status;
  const stopped: boolean = chat.stop();
  void chat.send('Where is my order?').then((accepted) => accepted.message_id);
  void chat.requestHuman('a refund').then((handoff) => handoff.state);
  // @ts-expect-error the gateway is required
  useConversation({});
  // @ts-expect-error `open`, not the client's `online`
  const online: ConversationStatus = 'online';
  // @ts-expect-error send takes text
  void chat.send({ text: 'hi' });
  return [status, sources.length, held, operator, connection, stopped, online, chat.streaming, chat.error?.code].join();
}
