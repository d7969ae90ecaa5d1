//! One turn: `turn.start`, retrieval and the prompt, the model's rounds raced against
//! cancel, deadline and drain, then `turn.end` and the assistant `message`.

use std::sync::Arc;
use std::time::Duration;

use switchboard_backplane::Event;

use switchboard_protocol::{EventBody, Role, Source, TurnStatus, Usage};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{TurnJob, Turns};
use crate::assistant::model::prompt;
use crate::assistant::named::NamedAssistant;
use crate::ids::new_id;
use crate::telemetry::spans;

/// How long a turn keeps retrying to record its end through a backplane outage.
const END_PATIENCE: Duration = Duration::from_secs(30);

impl Turns {
    /// One turn: start, the model's rounds (deltas, tool calls), end, and the
    /// assistant message when completed. `history` is the session's retained history
    /// (for the transcript). When `fence` is cancelled (this replica gave
    /// up the session to another) it stops without writing anything more: the new
    /// owner ends the turn.
    pub(super) async fn run(
        &self,
        job: TurnJob,
        history: &[Arc<Event>],
        turn_id: String,
        cancel: CancellationToken,
        fence: CancellationToken,
    ) {
        let span = spans::turn(&job.session_id, &turn_id, &job.access.org_id);
        let ended = self
            .run_turn(job, history, turn_id, cancel, fence)
            .instrument(span.clone())
            .await;
        if let Some(status) = ended {
            spans::end_turn(&span, status.as_str());
        }
    }

    /// [`Turns::run`] inside the turn's span; how the turn ended, `None` when this
    /// replica left its end to another.
    async fn run_turn(
        &self,
        job: TurnJob,
        history: &[Arc<Event>],
        turn_id: String,
        cancel: CancellationToken,
        fence: CancellationToken,
    ) -> Option<TurnStatus> {
        let watch = self.watch_cancel(&turn_id);
        let named = self.named_assistant(&job.session_id).await;
        let assistant_name = named.as_ref().map(|a| a.name.clone());
        let start = EventBody::TurnStart {
            turn_id: turn_id.clone(),
            reply_to: job.message_id.clone(),
            assistant: assistant_name.clone(),
        };
        if let Err(e) = self
            .events
            .append_patiently(&job.stream, start, END_PATIENCE)
            .await
        {
            tracing::error!(session_id = %job.session_id, error = %e, "could not start a turn");
            self.metrics.turns.with_label_values(&["failed"]).inc();
            return Some(TurnStatus::Failed);
        }
        let started = std::time::Instant::now();
        let settings = self
            .services
            .settings
            .resolve(&job.access.org_id, named.as_ref().map(|a| &a.spec.settings))
            .await;
        // Retrieval takes the asker's access context: only documents they may read
        // can reach the prompt, the reply or `sources`.
        let documents: Vec<_> = match self
            .knowledge
            .search_within(
                &job.question,
                &job.access,
                named.as_ref().and_then(|a| a.spec.documents.as_deref()),
                self.limits.load().prompt_documents,
            )
            .await
        {
            Ok(hits) => hits.into_iter().map(|h| h.document).collect(),
            Err(e) => {
                tracing::warn!(session_id = %job.session_id, error = %e, "knowledge search failed; answering without documents");
                Vec::new()
            }
        };
        let sources: Vec<Source> = documents
            .iter()
            .map(|d| Source {
                doc_id: d.doc_id.clone(),
                title: d.title.clone(),
                uri: d.uri.clone(),
            })
            .collect();
        let budget = self.limits.load().transcript_budget;
        let transcript = prompt::transcript_before(history, &job.message_id, budget);
        let messages = prompt::build(
            &settings.system_prompt,
            &documents,
            &transcript,
            budget,
            &job.question,
        );
        let mut progress = Progress {
            awaiting_first_token: Some(started),
            ..Progress::default()
        };
        let outcome = {
            let conversation = self.converse(
                &job,
                &turn_id,
                &settings,
                messages,
                documents,
                &mut progress,
            );
            tokio::pin!(conversation);
            let turn_deadline = self.limits.load().deadline;
            let deadline = tokio::time::sleep(turn_deadline);
            tokio::pin!(deadline);
            let cancelled_elsewhere = self.cancelled_elsewhere(&turn_id, &watch.hint);
            tokio::pin!(cancelled_elsewhere);
            // Whatever ends first drops the conversation, and with it the provider's
            // stream and its upstream request, and any wait for a tool decision.
            tokio::select! {
                biased;
                () = fence.cancelled() => None,
                () = cancel.cancelled() => Some((TurnStatus::Cancelled, None)),
                () = &mut cancelled_elsewhere => Some((TurnStatus::Cancelled, None)),
                () = self.abort_all.cancelled() => Some((
                    TurnStatus::Failed,
                    Some("the gateway shut down before the reply was finished".to_string()),
                )),
                () = &mut deadline => Some((
                    TurnStatus::Failed,
                    Some(format!(
                        "the reply took longer than the turn deadline of {}",
                        humantime::format_duration(turn_deadline)
                    )),
                )),
                outcome = &mut conversation => Some(outcome),
            }
        };
        let (status, error) = outcome?;
        if fence.is_cancelled() || self.replica.give_up_if_lapsed() {
            // Another replica may own the session now, or will once this identity's
            // heartbeat expires, and end this turn itself. Giving the identity up
            // cancels the fence, so the worker leaves the turn marked running for it.
            tracing::warn!(session_id = %job.session_id, %turn_id, "replica lapsed during the turn; leaving its end to the new owner");
            return None;
        }
        if let Some(usage) = &progress.usage {
            self.services
                .cost
                .budget
                .add(&job.access.org_id, usage)
                .await;
        }
        let text = progress.text;
        let end = EventBody::TurnEnd {
            turn_id: turn_id.clone(),
            status,
            text: text.clone(),
            usage: progress.usage,
            sources: Some(sources),
            error,
            code: None,
            retrying: None,
            assistant: assistant_name,
        };
        if let Err(e) = self
            .events
            .append_patiently(&job.stream, end, END_PATIENCE)
            .await
        {
            tracing::error!(session_id = %job.session_id, %turn_id, error = %e, "could not record a turn's end");
        }
        if status == TurnStatus::Completed {
            if fence.is_cancelled() || self.replica.give_up_if_lapsed() {
                // The replica that takes the session over writes the answer (see
                // `worker::settle_interrupted`).
                tracing::warn!(session_id = %job.session_id, %turn_id, "replica lapsed after the turn's end; leaving its answer to the new owner");
            } else if let Err(e) = self.answer(&job.stream, text, author(named.as_ref())).await {
                tracing::error!(session_id = %job.session_id, %turn_id, error = %e, "could not record the assistant message");
            }
        }
        self.metrics
            .turns
            .with_label_values(&[status.as_str()])
            .inc();
        Some(status)
    }
}

impl Turns {
    /// The assistant `message` of a completed turn, whose text is the turn's, under
    /// `author` (see [`author`]).
    pub(super) async fn answer(
        &self,
        stream: &switchboard_backplane::StreamName,
        text: String,
        author: String,
    ) -> Result<Arc<Event>, switchboard_backplane::AppendError> {
        let message = EventBody::Message {
            message_id: new_id("m"),
            role: Role::Assistant,
            text,
            author: Some(author),
        };
        self.events
            .append_patiently(stream, message, END_PATIENCE)
            .await
    }
}

/// The author of the assistant's messages: a named assistant's display name, or
/// `assistant` for the default one.
pub(super) fn author(named: Option<&NamedAssistant>) -> String {
    named.map_or_else(|| "assistant".to_string(), |a| a.spec.author(&a.name))
}

impl Turns {
    /// The named assistant of `session_id`, when it has one that still exists. One
    /// deleted since the session began, or unreadable now, leaves the session to the
    /// default assistant (logged).
    pub(super) async fn named_assistant(&self, session_id: &str) -> Option<NamedAssistant> {
        let record = match self.services.sessions.get(session_id).await {
            Ok(record) => record?,
            Err(e) => {
                tracing::warn!(session_id, error = %e.message, "session record unavailable; the default assistant answers");
                return None;
            }
        };
        let name = record.assistant?;
        match self.services.assistants.get(&record.org_id, &name).await {
            Ok(Some(named)) => Some(named),
            Ok(None) => {
                tracing::warn!(session_id, assistant = %name, "the session's assistant was deleted; the default assistant answers");
                None
            }
            Err(e) => {
                tracing::warn!(session_id, assistant = %name, error = %e.message, "assistant unavailable; the default assistant answers");
                None
            }
        }
    }
}

/// What a turn has produced so far; kept when it ends early.
#[derive(Default)]
pub(super) struct Progress {
    pub(super) text: String,
    usage: Option<Usage>,
    /// When `turn.start` was recorded, until the first delta is timed against it.
    pub(super) awaiting_first_token: Option<std::time::Instant>,
}

impl Progress {
    /// Usage adds up over the rounds of a turn that calls tools.
    pub(super) fn add_usage(&mut self, usage: Usage) {
        let total = self.usage.get_or_insert(Usage {
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 0,
        });
        total.prompt_tokens += usage.prompt_tokens;
        total.completion_tokens += usage.completion_tokens;
        total.total_tokens += usage.total_tokens;
    }
}
