//! The model's rounds: stream a reply; when the model asks for tools, run them (after
//! approval where required), give it the results and let it go on.

use futures_util::StreamExt;
use serde_json::Value;
use switchboard_protocol::handoff::HandoffBy;
use switchboard_protocol::{EventBody, TurnStatus, Usage};
use tracing::Instrument;

use super::run::Progress;
use super::{TurnJob, Turns};
use crate::assistant::approvals::{Decision, PendingCall};
use crate::assistant::knowledge::Document;
use crate::assistant::model::{
    ChatMessage, ChatRole, HANDOFF_TOOL, ModelChunk, ToolCall, TurnRequest, handoff_definition,
};
use crate::assistant::settings::ResolvedSettings;
use crate::assistant::tools::{CallContext, ToolOutcome, ToolSpec};
use crate::ids::new_id;
use crate::telemetry::spans;

impl Turns {
    /// The model's rounds: stream a reply; when it asks for tools, run them (after
    /// approval where required), give it the results and let it go on, at most
    /// `max_rounds` times.
    pub(super) async fn converse(
        &self,
        job: &TurnJob,
        turn_id: &str,
        settings: &ResolvedSettings,
        mut messages: Vec<ChatMessage>,
        documents: Vec<Document>,
        progress: &mut Progress,
    ) -> (TurnStatus, Option<String>) {
        let tools: &[ToolSpec] = if self.provider.supports_tools() {
            &settings.tools
        } else {
            &[]
        };
        let handoff = self.handoff_offer(job).await;
        let mut definitions: Vec<_> = tools.iter().map(ToolSpec::definition).collect();
        if handoff.is_some() {
            definitions.push(handoff_definition());
        }
        let model = settings
            .options
            .model
            .as_deref()
            .unwrap_or(self.provider.default_model());
        for round in 0..self.limits.load().max_rounds {
            let span = spans::model_call(self.provider.name(), model, round);
            let request = TurnRequest {
                session_id: job.session_id.clone(),
                turn_id: turn_id.to_string(),
                question: job.question.clone(),
                messages: messages.clone(),
                documents: documents.clone(),
                tools: definitions.clone(),
                handoff_when_unanswered: handoff.is_some_and(|h| h.when_unanswered),
                options: settings.options.clone(),
                access: job.access.clone(),
            };
            let mut round_usage = None;
            let streamed = self
                .stream_round(job, turn_id, request, progress, &mut round_usage)
                .instrument(span.clone())
                .await;
            let tokens = round_usage.map(|u: Usage| (u.prompt_tokens, u.completion_tokens));
            let (round_text, calls) = match streamed {
                Ok(round) => round,
                Err(end) => {
                    spans::end_model_call(&span, "failed", tokens);
                    return end;
                }
            };
            if calls.is_empty() {
                spans::end_model_call(&span, "text", tokens);
                return (TurnStatus::Completed, None);
            }
            spans::end_model_call(&span, "tool_calls", tokens);
            drop(span);
            messages.push(ChatMessage {
                role: ChatRole::Assistant,
                content: round_text,
                tool_calls: calls.clone(),
                tool_call_id: None,
            });
            for call in calls {
                let outcome = match self
                    .call_tool(job, turn_id, tools, handoff.is_some(), &call)
                    .instrument(spans::tool_call(&call.name))
                    .await
                {
                    Ok(outcome) => outcome,
                    Err(error) => return (TurnStatus::Failed, Some(error)),
                };
                messages.push(ChatMessage {
                    role: ChatRole::Tool,
                    content: outcome.output.to_string(),
                    tool_calls: Vec::new(),
                    tool_call_id: Some(call.id.clone()),
                });
            }
        }
        (
            TurnStatus::Failed,
            Some(format!(
                "the model kept calling tools; stopped after {} rounds (--tool-max-rounds)",
                self.limits.load().max_rounds
            )),
        )
    }

    /// One round of the model's reply: its deltas appended as they come, its usage
    /// added up; the round's text and the tools it asks for, or how the turn ends.
    async fn stream_round(
        &self,
        job: &TurnJob,
        turn_id: &str,
        request: TurnRequest,
        progress: &mut Progress,
        round_usage: &mut Option<Usage>,
    ) -> Result<(String, Vec<ToolCall>), (TurnStatus, Option<String>)> {
        let mut reply = self.provider.reply(request);
        let mut call = ModelCallTimer::start(&self.metrics, self.provider.name());
        let mut round_text = String::new();
        let mut calls = Vec::new();
        while let Some(chunk) = reply.next().await {
            match chunk {
                Ok(ModelChunk::Delta(delta)) if delta.is_empty() => {}
                Ok(ModelChunk::Delta(delta)) => {
                    if self.replica.give_up_if_lapsed() {
                        // Another replica may own the session now: write nothing.
                        // (The fence is cancelled: `run` writes no end either.)
                        return Err((TurnStatus::Failed, Some("replica lapsed".into())));
                    }
                    let event = EventBody::TurnDelta {
                        turn_id: turn_id.to_string(),
                        text: delta.clone(),
                    };
                    if let Err(e) = self.events.append(&job.stream, event).await {
                        return Err((
                            TurnStatus::Failed,
                            Some(format!("the reply could not be recorded: {}", e.kind)),
                        ));
                    }
                    if let Some(started) = progress.awaiting_first_token.take() {
                        self.metrics
                            .time_to_first_token
                            .observe(started.elapsed().as_secs_f64());
                    }
                    progress.text.push_str(&delta);
                    round_text.push_str(&delta);
                }
                Ok(ModelChunk::Usage(usage)) => {
                    *round_usage = Some(usage);
                    progress.add_usage(usage);
                }
                Ok(ModelChunk::ToolCalls(more)) => calls.extend(more),
                Err(e) => {
                    call.outcome = "error";
                    return Err((TurnStatus::Failed, Some(e.0)));
                }
            }
        }
        call.outcome = "ok";
        Ok((round_text, calls))
    }

    /// One tool call: `tool.request`, the decision when the tool needs approval, the
    /// call to its endpoint, `tool.result`. A call that cannot run becomes a failed
    /// result the model can read; only a backplane that cannot record the exchange
    /// fails the turn.
    pub(super) async fn call_tool(
        &self,
        job: &TurnJob,
        turn_id: &str,
        tools: &[ToolSpec],
        handoff_offered: bool,
        call: &ToolCall,
    ) -> Result<ToolOutcome, String> {
        let call_id = new_id("tc");
        let spec = tools.iter().find(|t| t.name == call.name);
        let arguments: Option<Value> = serde_json::from_str::<Value>(&call.arguments)
            .ok()
            .filter(Value::is_object);
        let builtin_handoff = handoff_offered && call.name == HANDOFF_TOOL;
        let requires_approval =
            !builtin_handoff && spec.is_some_and(|s| s.requires_approval) && arguments.is_some();
        if requires_approval {
            let owner = match self.services.sessions.get(&job.session_id).await {
                Ok(Some(record)) => record.owner,
                _ => None,
            };
            let pending = PendingCall {
                session_id: job.session_id.clone(),
                turn_id: turn_id.to_string(),
                org_id: job.access.org_id.clone(),
                tool: call.name.clone(),
                owner,
                asker: Some(job.access.clone()),
                replica: Some(self.replica_id()),
            };
            if let Err(e) = self.services.approvals.open(&call_id, &pending).await {
                return Err(format!(
                    "the tool call could not be put up for approval: {}",
                    e.kind
                ));
            }
        }
        let request = EventBody::ToolRequest {
            turn_id: turn_id.to_string(),
            call_id: call_id.clone(),
            tool: call.name.clone(),
            arguments: arguments
                .clone()
                .unwrap_or_else(|| Value::String(call.arguments.clone())),
            requires_approval,
        };
        if let Err(e) = self.events.append(&job.stream, request).await {
            return Err(format!("the tool call could not be recorded: {}", e.kind));
        }
        let mut decided_by = None;
        // This call's span (`.instrument`ed by the caller).
        let span = tracing::Span::current();
        let outcome = match (spec, &arguments) {
            _ if builtin_handoff => {
                spans::tool_decision(&span, "handoff");
                self.hand_off(job, arguments.as_ref()).await
            }
            (None, _) => {
                spans::tool_decision(&span, "refused");
                ToolOutcome::failed(format!("there is no tool named {}", call.name))
            }
            (Some(_), None) => {
                spans::tool_decision(&span, "refused");
                ToolOutcome::failed("the arguments are not a JSON object")
            }
            (Some(spec), Some(arguments)) => {
                let decision = if requires_approval {
                    let (decision, by) = self.services.approvals.wait(&call_id).await;
                    decided_by = by;
                    decision
                } else {
                    Decision::Approved
                };
                spans::tool_decision(
                    &span,
                    match decision {
                        Decision::Approved if requires_approval => "approved",
                        Decision::Approved => "automatic",
                        Decision::Denied => "denied",
                        Decision::TimedOut => "timed_out",
                    },
                );
                match decision {
                    Decision::Approved => {
                        let ctx = CallContext {
                            access: &job.access,
                            session_id: &job.session_id,
                            turn_id,
                            call_id: &call_id,
                            approved: requires_approval,
                            approved_by: decided_by.as_deref(),
                        };
                        self.services.tools.run(spec, arguments, &ctx).await
                    }
                    Decision::Denied => ToolOutcome::failed("the user denied this tool call"),
                    Decision::TimedOut => ToolOutcome::failed(
                        "nobody approved this tool call in time, so it was denied",
                    ),
                }
            }
        };
        spans::end_tool_call(&span, outcome.ok);
        self.metrics
            .tool_calls
            .with_label_values(&[if outcome.ok { "ok" } else { "failed" }])
            .inc();
        let result = EventBody::ToolResult {
            turn_id: turn_id.to_string(),
            call_id,
            ok: outcome.ok,
            output: Some(outcome.output.clone()),
            decided_by,
        };
        if let Err(e) = self.events.append(&job.stream, result).await {
            return Err(format!("the tool result could not be recorded: {}", e.kind));
        }
        Ok(outcome)
    }
}

/// What the org lets the model do about a person, when it may ask for one at all.
#[derive(Debug, Clone, Copy)]
pub(super) struct HandoffOffer {
    pub(super) when_unanswered: bool,
}

impl Turns {
    /// The built-in handoff tool is offered when the org has handoff on and the
    /// provider can use it.
    async fn handoff_offer(&self, job: &TurnJob) -> Option<HandoffOffer> {
        if !self.provider.supports_handoff() {
            return None;
        }
        let settings = self
            .services
            .handoff
            .turn_settings(&job.access.org_id)
            .await;
        settings.enabled.then_some(HandoffOffer {
            when_unanswered: settings.when_unanswered,
        })
    }

    /// The model asks for a person: the session waits for one (the AI stays silent
    /// from the next message on), and the model hears that it did.
    async fn hand_off(&self, job: &TurnJob, arguments: Option<&Value>) -> ToolOutcome {
        let reason = arguments
            .and_then(|a| a.get("reason"))
            .and_then(Value::as_str);
        let session = match self.services.sessions.get(&job.session_id).await {
            Ok(Some(session)) => session,
            Ok(None) => return ToolOutcome::failed("the conversation no longer exists"),
            Err(e) => {
                return ToolOutcome::failed(format!("could not ask for a person: {}", e.message));
            }
        };
        match self
            .services
            .handoff
            .request(&session, HandoffBy::Assistant, reason)
            .await
        {
            Ok(handoff) => ToolOutcome {
                ok: true,
                output: serde_json::json!({ "state": handoff.state }),
            },
            Err(e) => ToolOutcome::failed(format!("could not ask for a person: {}", e.message)),
        }
    }
}

/// Times one model request, from the request to the end of its stream, observed
/// when dropped: `cancelled` unless the round set another outcome (a turn cancelled,
/// timed out or fenced drops it mid-stream).
struct ModelCallTimer<'a> {
    metrics: &'a crate::metrics::Metrics,
    provider: &'static str,
    started: std::time::Instant,
    outcome: &'static str,
}

impl<'a> ModelCallTimer<'a> {
    fn start(metrics: &'a crate::metrics::Metrics, provider: &'static str) -> ModelCallTimer<'a> {
        ModelCallTimer {
            metrics,
            provider,
            started: std::time::Instant::now(),
            outcome: "cancelled",
        }
    }
}

impl Drop for ModelCallTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .model_call_seconds
            .with_label_values(&[self.provider, self.outcome])
            .observe(self.started.elapsed().as_secs_f64());
    }
}
