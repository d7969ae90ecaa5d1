//! What became of a message's reply, or of a turn, read from the session's events:
//! for the synchronous chat (`POST /v1/chat`, which waits for its turn's `turn.end`)
//! and the turn route (`GET /v1/sessions/{id}/turns/{turn_id}`).
//!
//! A reply is followed by its turn's `turn.start` (`reply_to` = the message) and
//! `turn.end`. A turn whose replica stopped ends `failed` `replica_lost`; with
//! `retrying: true` a new turn answers the same message, and following the message
//! follows that one.
//!
//! [`ReplyWatch`] subscribes to the stream *before* the message is sent (a member of
//! the stream's hub, like a socket, with its own bounded queue), so no event of the
//! reply can fall between sending and watching; it reads the retained history too,
//! for a retried `client_message_id` whose reply was written earlier. A watch whose
//! queue overflows falls back to reading the history.

use std::sync::Arc;
use std::time::Duration;

use switchboard_backplane::{Backplane, StreamName};
use switchboard_protocol::{Event, EventBody, Seq, Source, TurnEndCode, TurnStatus, Usage};
use tokio::time::Instant;

use crate::conversations::TranscriptReader;
use crate::error::ClientError;
use crate::fanout::outbound::{OutboundReceiver, Outgoing};
use crate::fanout::{ConnectionId, Outbound, Registry, new_connection_id};

/// Events per history read.
const PAGE: usize = 256;
/// Most history pages one look reads (retention bounds a session's history anyway).
const MAX_PAGES: usize = 64;
/// Most transcript pages the turn route reads for a turn the history no longer holds.
const MAX_TRANSCRIPT_PAGES: usize = 32;
/// How often a watch whose queue overflowed reads the history instead.
const POLL: Duration = Duration::from_millis(200);

/// A turn's `turn.end`, with its position: the same fields members received.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnEnded {
    /// The `seq` of the `turn.end` event.
    pub seq: Seq,
    pub turn_id: String,
    pub status: TurnStatus,
    /// The whole reply (partial when not completed).
    pub text: String,
    pub usage: Option<Usage>,
    pub sources: Option<Vec<Source>>,
    pub error: Option<String>,
    pub code: Option<TurnEndCode>,
    pub retrying: Option<bool>,
    /// The named assistant that answered.
    pub assistant: Option<String>,
}

/// Where a reply (or a turn) stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// No turn answers it yet: it waits in the session's queue (behind other turns,
    /// for a slot, or while a person holds the conversation).
    Queued,
    /// Its turn runs.
    Running { turn_id: String },
    /// Its turn ended.
    Ended(TurnEnded),
}

/// What is being followed.
#[derive(Debug, Clone)]
enum Target {
    /// The reply to this message (across a `replica_lost` retry).
    Message(String),
    /// This turn.
    Turn(String),
}

/// Follows one reply or turn through events, in `seq` order, each seen at most once
/// (history and live deliveries may overlap).
#[derive(Debug)]
struct Follow {
    target: Target,
    turn_id: Option<String>,
    ended: Option<TurnEnded>,
    /// The followed message was seen (its `message` event).
    message_seen: bool,
    /// The newest `seq` observed.
    cursor: Seq,
}

impl Follow {
    fn new(target: Target, after: Seq) -> Follow {
        Follow {
            target,
            turn_id: None,
            ended: None,
            message_seen: false,
            cursor: after,
        }
    }

    fn observe(&mut self, event: &Event) {
        if event.seq <= self.cursor || self.ended.is_some() {
            return;
        }
        self.cursor = event.seq;
        match &event.body {
            EventBody::Message { message_id, .. } => {
                if matches!(&self.target, Target::Message(wanted) if wanted == message_id) {
                    self.message_seen = true;
                }
            }
            EventBody::TurnStart {
                turn_id, reply_to, ..
            } => {
                let ours = match &self.target {
                    Target::Message(message_id) => reply_to == message_id,
                    Target::Turn(wanted) => turn_id == wanted,
                };
                if ours {
                    self.turn_id = Some(turn_id.clone());
                }
            }
            EventBody::TurnEnd {
                turn_id,
                status,
                text,
                usage,
                sources,
                error,
                code,
                retrying,
                assistant,
            } => {
                let ours = match &self.target {
                    Target::Message(_) => self.turn_id.as_ref() == Some(turn_id),
                    Target::Turn(wanted) => turn_id == wanted,
                };
                if !ours {
                    return;
                }
                if matches!(self.target, Target::Message(_)) && *retrying == Some(true) {
                    // A new turn answers the same message: follow it instead.
                    self.turn_id = None;
                    return;
                }
                self.ended = Some(TurnEnded {
                    seq: event.seq,
                    turn_id: turn_id.clone(),
                    status: *status,
                    text: text.clone(),
                    usage: *usage,
                    sources: sources.clone(),
                    error: error.clone(),
                    code: *code,
                    retrying: *retrying,
                    assistant: assistant.clone(),
                });
            }
            _ => {}
        }
    }

    fn progress(&self) -> Progress {
        match (&self.ended, &self.turn_id) {
            (Some(ended), _) => Progress::Ended(ended.clone()),
            (None, Some(turn_id)) => Progress::Running {
                turn_id: turn_id.clone(),
            },
            (None, None) => Progress::Queued,
        }
    }

    /// Read the retained history after the cursor (a bounded number of pages);
    /// whether it was trimmed past the cursor.
    async fn read_history(
        &mut self,
        backplane: &dyn Backplane,
        stream: &StreamName,
    ) -> Result<bool, ClientError> {
        let mut trimmed = false;
        for page_number in 0..MAX_PAGES {
            let page = backplane.read(stream, Some(self.cursor), PAGE).await?;
            if page_number == 0 {
                trimmed = page.trimmed;
            }
            let read = page.events.len();
            for event in &page.events {
                self.observe(event);
            }
            if read < PAGE || self.ended.is_some() {
                break;
            }
        }
        Ok(trimmed)
    }
}

/// A stream watched for one reply; leaves the stream's hub when dropped.
pub struct ReplyWatch {
    registry: Arc<Registry>,
    backplane: Arc<dyn Backplane>,
    stream: StreamName,
    member: ConnectionId,
    outbound: Arc<Outbound>,
    receiver: OutboundReceiver,
}

impl ReplyWatch {
    /// Subscribe to `stream` (live events only, into a queue of `queue_bytes`), and
    /// wait until the backplane subscription is in place: everything appended after
    /// this returns is seen.
    pub async fn open(
        registry: Arc<Registry>,
        backplane: Arc<dyn Backplane>,
        stream: StreamName,
        queue_bytes: usize,
    ) -> Result<ReplyWatch, ClientError> {
        let (outbound, receiver) = Outbound::new(queue_bytes);
        let member = new_connection_id();
        registry.join_live(&stream, member, outbound.clone());
        let watch = ReplyWatch {
            registry,
            backplane,
            stream,
            member,
            outbound,
            receiver,
        };
        if !watch.registry.wait_subscribed(&watch.stream).await {
            return Err(ClientError::new(
                switchboard_protocol::ErrorCode::Unavailable,
                "could not subscribe to the session on the backplane; retry in a moment",
            ));
        }
        Ok(watch)
    }

    /// Follow the reply to `message_id` (appended at `seq`) until its turn ends or
    /// `deadline` passes: where it stands then.
    pub async fn reply_to(
        &mut self,
        message_id: &str,
        seq: Seq,
        deadline: Instant,
    ) -> Result<Progress, ClientError> {
        let mut follow = Follow::new(Target::Message(message_id.to_string()), seq);
        follow
            .read_history(self.backplane.as_ref(), &self.stream)
            .await?;
        while follow.ended.is_none() {
            let next = tokio::time::timeout_at(deadline, self.receiver.rx.recv()).await;
            match next {
                Err(_) => break,
                Ok(Some(Outgoing::Text(frame))) => {
                    self.outbound.dequeued(frame.len());
                    // The hub delivers every event in order (it fills gaps itself).
                    if let Ok(event) = serde_json::from_str::<Event>(frame.as_str()) {
                        follow.observe(&event);
                    }
                }
                Ok(Some(Outgoing::Ping)) => {}
                Ok(None) => {
                    // The queue overflowed or closed: read the history instead.
                    if tokio::time::timeout_at(deadline, tokio::time::sleep(POLL))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    follow
                        .read_history(self.backplane.as_ref(), &self.stream)
                        .await?;
                }
            }
        }
        Ok(follow.progress())
    }
}

impl Drop for ReplyWatch {
    fn drop(&mut self) {
        self.receiver.rx.close();
        self.registry.leave(&self.stream, self.member);
    }
}

/// Where the reply to `message_id` of `stream` stands: `None` when the retained
/// history does not hold that message (it never was, or retention dropped it).
pub async fn reply_progress(
    backplane: &dyn Backplane,
    stream: &StreamName,
    message_id: &str,
) -> Result<Option<Progress>, ClientError> {
    let mut follow = Follow::new(Target::Message(message_id.to_string()), 0);
    follow.read_history(backplane, stream).await?;
    Ok(follow.message_seen.then(|| follow.progress()))
}

/// Where the turn `turn_id` of `stream` stands: `None` when neither the retained
/// history, the transcript (for turns the history no longer holds) nor the session's
/// queue know it. `running` is the session's running turn, as its lease names it.
pub async fn turn_progress(
    backplane: &dyn Backplane,
    transcripts: &TranscriptReader,
    stream: &StreamName,
    turn_id: &str,
    running: Option<&str>,
) -> Result<Option<Progress>, ClientError> {
    let mut follow = Follow::new(Target::Turn(turn_id.to_string()), 0);
    let first = backplane.read(stream, None, 1).await?;
    let history_starts = first.events.first().map(|e| e.seq);
    follow.read_history(backplane, stream).await?;
    if follow.ended.is_none() && history_starts.is_none_or(|s| s > 1) {
        // Older than the history: the transcript keeps every `turn.end`.
        let mut older = Follow::new(Target::Turn(turn_id.to_string()), 0);
        older.turn_id = Some(turn_id.to_string());
        let mut after = 0;
        for _ in 0..MAX_TRANSCRIPT_PAGES {
            let page = transcripts
                .page(stream, after, history_starts)
                .await
                .map_err(ClientError::from)?;
            let full = page.len() >= switchboard_store::MAX_TRANSCRIPT_PAGE;
            for event in &page {
                older.observe(event);
            }
            if older.ended.is_some() || !full {
                break;
            }
            after = page.last().map_or(after, |e| e.seq);
        }
        if let Some(ended) = older.ended {
            return Ok(Some(Progress::Ended(ended)));
        }
    }
    Ok(match follow.progress() {
        Progress::Queued if running == Some(turn_id) => Some(Progress::Running {
            turn_id: turn_id.to_string(),
        }),
        Progress::Queued => None,
        progress => Some(progress),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: Seq, body: EventBody) -> Event {
        Event {
            seq,
            ts: 0,
            body,
            traceparent: None,
        }
    }

    fn start(seq: Seq, turn: &str, message: &str) -> Event {
        event(
            seq,
            EventBody::TurnStart {
                turn_id: turn.into(),
                reply_to: message.into(),
                assistant: None,
            },
        )
    }

    fn end(seq: Seq, turn: &str, status: TurnStatus, retrying: Option<bool>) -> Event {
        event(
            seq,
            EventBody::TurnEnd {
                turn_id: turn.into(),
                status,
                text: format!("reply of {turn}"),
                usage: None,
                sources: None,
                error: None,
                code: retrying.map(|_| TurnEndCode::ReplicaLost),
                retrying,
                assistant: None,
            },
        )
    }

    #[test]
    fn a_message_is_followed_to_its_own_turn_and_across_a_retry() {
        let mut follow = Follow::new(Target::Message("m2".into()), 3);
        assert_eq!(follow.progress(), Progress::Queued);
        follow.observe(&start(4, "t1", "m1"));
        follow.observe(&end(5, "t1", TurnStatus::Completed, None));
        assert_eq!(
            follow.progress(),
            Progress::Queued,
            "another message's turn"
        );
        follow.observe(&start(6, "t2", "m2"));
        assert_eq!(
            follow.progress(),
            Progress::Running {
                turn_id: "t2".into()
            }
        );
        follow.observe(&end(7, "t2", TurnStatus::Failed, Some(true)));
        assert_eq!(follow.progress(), Progress::Queued, "a retry follows");
        follow.observe(&start(8, "t3", "m2"));
        follow.observe(&end(9, "t3", TurnStatus::Completed, None));
        let Progress::Ended(ended) = follow.progress() else {
            panic!("ended")
        };
        assert_eq!((ended.seq, ended.turn_id.as_str()), (9, "t3"));
        assert_eq!(ended.text, "reply of t3");
    }

    #[test]
    fn an_event_seen_twice_or_out_of_order_counts_once() {
        let mut follow = Follow::new(Target::Turn("t1".into()), 0);
        follow.observe(&start(2, "t1", "m1"));
        follow.observe(&end(3, "t1", TurnStatus::Cancelled, None));
        follow.observe(&end(3, "t1", TurnStatus::Completed, None));
        let Progress::Ended(ended) = follow.progress() else {
            panic!("ended")
        };
        assert_eq!(ended.status, TurnStatus::Cancelled);
    }
}
