//! Prometheus metrics, registered once and rendered by the `prometheus` crate.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Buckets of model latencies, in seconds: first tokens and whole calls.
const LATENCY_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0,
];

/// Every metric the gateway exports. Names start with `switchboard_`.
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket connections.
    pub connections: IntGauge,
    /// Tokio tasks alive in the runtime that renders the metrics, read at each render
    /// (a count that only grows is a leak: the soak in docs/benchmarks.md checks it).
    pub tasks_alive: IntGauge,
    /// Client frames received, by `type` (`invalid` for unparseable ones).
    pub frames_received: IntCounterVec,
    /// Events appended to the backplane by this replica, by event `type`.
    pub events_appended: IntCounterVec,
    /// Event frames handed to local connections' outbound queues.
    pub events_delivered: IntCounter,
    /// Streams this replica is subscribed to (one subscription per stream).
    pub streams_subscribed: IntGauge,
    /// Turns ended, by `status`.
    pub turns: IntCounterVec,
    pub tool_calls: IntCounterVec,
    /// Sessions whose turn queue this replica took over from a replica that stopped
    /// (or handed it over while draining).
    pub turn_takeovers: IntCounter,
    /// Turns this replica ended `replica_lost` for a replica that stopped, by
    /// `retrying` (`true`: the message is answered again).
    pub turns_replica_lost: IntCounterVec,
    /// Heartbeats of this replica that the backplane did not take.
    pub replica_heartbeat_failures: IntCounter,
    /// Connections closed by the server, by close `code`.
    pub disconnects: IntCounterVec,
    /// Errors sent to clients, by `code`.
    pub errors_sent: IntCounterVec,
    /// Backplane operation latency, by `op`.
    pub backplane_seconds: HistogramVec,
    /// Backplane operation failures, by `op`.
    pub backplane_errors: IntCounterVec,
    /// Transcript entries waiting to be written to the conversation store.
    pub transcript_queue: IntGauge,
    /// Transcript entries handed to the store, by `outcome` (`written`, `dropped`).
    pub transcript_entries: IntCounterVec,
    /// Conversation store batch writes' latency.
    pub store_write_seconds: prometheus::Histogram,
    /// Conversation store failures, by `op`.
    pub store_errors: IntCounterVec,
    /// Conversations removed, by `reason` (`deleted`, `erased`, `expired`).
    pub conversations_removed: IntCounterVec,
    /// Webhook deliveries finished, by `outcome` (`delivered`, `failed`).
    pub webhook_deliveries: IntCounterVec,
    /// Webhook attempts, by `result` (`delivered`, `retryable`, `refused`).
    pub webhook_attempts: IntCounterVec,
    /// Webhook deliveries pending in this process (queued or waiting for a retry).
    pub webhook_queue: IntGauge,
    /// Webhook events or deliveries dropped, by `reason`.
    pub webhook_dropped: IntCounterVec,
    /// Session memberships (a connection in a session) this replica tracks in presence.
    pub presence_members: IntGauge,
    /// Sessions with members of this replica in presence.
    pub presence_sessions: IntGauge,
    /// Joins left out of presence because a limit was reached, by `limit` (`session`,
    /// `process`).
    pub presence_refused: IntCounterVec,
    /// `typing` frames from members, by `outcome` (`forwarded`, `dropped` by the rate
    /// limit).
    pub typing_frames: IntCounterVec,
    /// Presence hints to other replicas dropped because their queue was full.
    pub presence_hints_dropped: IntCounter,
    /// Sessions this replica created within the last `--unused-session-ttl`.
    pub sessions_live: IntGauge,
    /// `session.create`s refused by a quota, by `limit` (`per_minute`,
    /// `per_principal`, `process`, `contention`).
    pub session_creations_refused: IntCounterVec,
    /// Turns holding a slot under `--max-concurrent-turns` (running on this replica).
    pub turns_running: IntGauge,
    /// Turns waiting for a slot (at most `--turn-slot-wait` each).
    pub turns_waiting_for_slot: IntGauge,
    /// Turns not started, by `reason` (`process_busy`, `org_busy`, `principal_busy`,
    /// `budget_exhausted`).
    pub turns_refused: IntCounterVec,
    /// Tokens the model reported (`turn.end.usage`), by `org_id` (the first
    /// `--token-metrics-orgs` orgs seen, the rest `_other`) and `kind` (`prompt`,
    /// `completion`).
    pub tokens: IntCounterVec,
    /// Knowledge-base writes refused by an org's quota, by `limit` (`documents`,
    /// `bytes`).
    pub documents_refused: IntCounterVec,
    /// Document records read by this replica's index refreshes.
    pub documents_read: IntCounter,
    /// Bytes of history the replays in progress reserve (`--replay-memory-bytes`).
    pub replay_bytes: IntGauge,
    /// Synchronous chats (`POST /v1/chat`) waiting for their reply now.
    pub sync_chats_waiting: IntGauge,
    /// Synchronous chats refused by a limit, by `limit` (`process`, `principal`).
    pub sync_chats_refused: IntCounterVec,
    /// Open TCP connections (HTTP and WebSocket) this replica admitted.
    pub tcp_connections: IntGauge,
    /// TCP connections and WebSocket upgrades refused by a limit, by `limit`.
    pub connections_refused: IntCounterVec,
    /// Refused connections closed without an answer (too many refusals in flight).
    pub refusals_unanswered: IntCounter,
    /// Connections closed, or upgrades refused, for taking too long, by `phase`
    /// (`header`, `idle`, `ws_handshake`).
    pub http_timeouts: IntCounterVec,
    /// Open SSE event streams (`GET /v1/sessions/{id}/stream`).
    pub sse_streams: IntGauge,
    /// SSE event streams ended, by `reason` (`client`, `slow_consumer`, `draining`,
    /// `token_expired`, `error`).
    pub sse_closes: IntCounterVec,
    /// Configuration reloads, by `result` (`ok`, `rejected`).
    pub config_reloads: IntCounterVec,
    /// From a turn's start to its first `turn.delta`.
    pub time_to_first_token: prometheus::Histogram,
    /// Model requests (one per round of a turn), by `provider` and `outcome` (`ok`,
    /// `error`, `cancelled`), from the request to its stream's end.
    pub model_call_seconds: HistogramVec,
    /// HTTP requests answered, by `method`, `route` (the route template, e.g.
    /// `/v1/sessions/{session_id}`; `unmatched` for no route) and `status` class.
    pub http_requests: IntCounterVec,
    /// HTTP request latency to the response head, by `method` and `route`.
    pub http_request_seconds: HistogramVec,
    /// When this process started, seconds since the Unix epoch.
    pub start_time: prometheus::Gauge,
    /// Seconds since this process started, read at each render.
    pub uptime: prometheus::Gauge,
    started: std::time::Instant,
}

impl Metrics {
    /// Register every metric. Fails only on a duplicate name, a bug caught by tests.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let connections = IntGauge::new("switchboard_connections", "Open WebSocket connections")?;
        let tasks_alive = IntGauge::new(
            "switchboard_tokio_tasks_alive",
            "Tokio tasks alive in the gateway's runtime",
        )?;
        let frames_received = IntCounterVec::new(
            Opts::new(
                "switchboard_frames_received_total",
                "Client frames received, by type",
            ),
            &["type"],
        )?;
        let events_appended = IntCounterVec::new(
            Opts::new(
                "switchboard_events_appended_total",
                "Events appended to the backplane by this replica, by type",
            ),
            &["type"],
        )?;
        let events_delivered = IntCounter::new(
            "switchboard_events_delivered_total",
            "Event frames queued to local connections",
        )?;
        let streams_subscribed = IntGauge::new(
            "switchboard_streams_subscribed",
            "Streams this replica holds a backplane subscription for",
        )?;
        let turns = IntCounterVec::new(
            Opts::new("switchboard_turns_total", "Agent turns ended, by status"),
            &["status"],
        )?;
        let tool_calls = IntCounterVec::new(
            Opts::new(
                "switchboard_tool_calls_total",
                "Tool calls the model asked for, by outcome (ok, failed: denied, timed out, unknown tool or endpoint error)",
            ),
            &["outcome"],
        )?;
        let turn_takeovers = IntCounter::new(
            "switchboard_turn_takeovers_total",
            "Session turn queues taken over from a replica that stopped or drained",
        )?;
        let turns_replica_lost = IntCounterVec::new(
            Opts::new(
                "switchboard_turns_replica_lost_total",
                "Turns ended replica_lost on behalf of a replica that stopped, by whether the message is answered again",
            ),
            &["retrying"],
        )?;
        let replica_heartbeat_failures = IntCounter::new(
            "switchboard_replica_heartbeat_failures_total",
            "Heartbeats (turn lease renewals) of this replica the backplane did not take",
        )?;
        let disconnects = IntCounterVec::new(
            Opts::new(
                "switchboard_disconnects_total",
                "Connections closed by the server, by close code",
            ),
            &["code"],
        )?;
        let errors_sent = IntCounterVec::new(
            Opts::new(
                "switchboard_errors_sent_total",
                "Error frames sent, by code",
            ),
            &["code"],
        )?;
        let backplane_seconds = HistogramVec::new(
            HistogramOpts::new(
                "switchboard_backplane_op_seconds",
                "Backplane operation latency, by operation",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            &["op"],
        )?;
        let backplane_errors = IntCounterVec::new(
            Opts::new(
                "switchboard_backplane_errors_total",
                "Backplane operation failures, by operation",
            ),
            &["op"],
        )?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(tasks_alive.clone()))?;
        registry.register(Box::new(frames_received.clone()))?;
        registry.register(Box::new(events_appended.clone()))?;
        registry.register(Box::new(events_delivered.clone()))?;
        registry.register(Box::new(streams_subscribed.clone()))?;
        registry.register(Box::new(turns.clone()))?;
        registry.register(Box::new(tool_calls.clone()))?;
        registry.register(Box::new(turn_takeovers.clone()))?;
        registry.register(Box::new(turns_replica_lost.clone()))?;
        registry.register(Box::new(replica_heartbeat_failures.clone()))?;
        registry.register(Box::new(disconnects.clone()))?;
        registry.register(Box::new(errors_sent.clone()))?;
        registry.register(Box::new(backplane_seconds.clone()))?;
        registry.register(Box::new(backplane_errors.clone()))?;
        let transcript_queue = IntGauge::new(
            "switchboard_transcript_queue",
            "Transcript entries waiting to be written to the conversation store",
        )?;
        let transcript_entries = IntCounterVec::new(
            Opts::new(
                "switchboard_transcript_entries_total",
                "Transcript entries handed to the conversation store, by outcome",
            ),
            &["outcome"],
        )?;
        let store_write_seconds =
            prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(
                "switchboard_store_write_seconds",
                "Latency of the conversation store's batch writes",
            ))?;
        let store_errors = IntCounterVec::new(
            Opts::new(
                "switchboard_store_errors_total",
                "Conversation store failures, by operation",
            ),
            &["op"],
        )?;
        let conversations_removed = IntCounterVec::new(
            Opts::new(
                "switchboard_conversations_removed_total",
                "Conversations removed from the store, by reason",
            ),
            &["reason"],
        )?;
        let presence_members = IntGauge::new(
            "switchboard_presence_members",
            "Session memberships (a connection in a session) this replica tracks in presence",
        )?;
        let presence_sessions = IntGauge::new(
            "switchboard_presence_sessions",
            "Sessions with members of this replica in presence",
        )?;
        let presence_refused = IntCounterVec::new(
            Opts::new(
                "switchboard_presence_refused_total",
                "Joins left out of presence because a limit was reached, by limit",
            ),
            &["limit"],
        )?;
        let typing_frames = IntCounterVec::new(
            Opts::new(
                "switchboard_typing_total",
                "typing frames from members, by outcome (forwarded, dropped by the rate limit)",
            ),
            &["outcome"],
        )?;
        let presence_hints_dropped = IntCounter::new(
            "switchboard_presence_hints_dropped_total",
            "Presence hints to other replicas dropped because their queue was full",
        )?;
        registry.register(Box::new(presence_hints_dropped.clone()))?;
        let documents_refused = IntCounterVec::new(
            Opts::new(
                "switchboard_documents_refused_total",
                "Knowledge-base writes refused by an org's document quota, by limit (documents, bytes)",
            ),
            &["limit"],
        )?;
        registry.register(Box::new(documents_refused.clone()))?;
        let documents_read = IntCounter::new(
            "switchboard_documents_read_total",
            "Document records read by this replica's knowledge index refreshes",
        )?;
        registry.register(Box::new(documents_read.clone()))?;
        let replay_bytes = IntGauge::new(
            "switchboard_replay_bytes",
            "Bytes of history the replays in progress reserve against --replay-memory-bytes",
        )?;
        registry.register(Box::new(replay_bytes.clone()))?;
        let sync_chats_waiting = IntGauge::new(
            "switchboard_sync_chats_waiting",
            "Synchronous chats (POST /v1/chat) waiting for their reply on this replica",
        )?;
        registry.register(Box::new(sync_chats_waiting.clone()))?;
        let sync_chats_refused = IntCounterVec::new(
            Opts::new(
                "switchboard_sync_chats_refused_total",
                "Synchronous chats refused with 503 by --max-sync-chats (limit=process) or --max-sync-chats-per-principal (limit=principal)",
            ),
            &["limit"],
        )?;
        registry.register(Box::new(sync_chats_refused.clone()))?;
        registry.register(Box::new(presence_members.clone()))?;
        registry.register(Box::new(presence_sessions.clone()))?;
        registry.register(Box::new(presence_refused.clone()))?;
        registry.register(Box::new(typing_frames.clone()))?;
        registry.register(Box::new(transcript_queue.clone()))?;
        registry.register(Box::new(transcript_entries.clone()))?;
        registry.register(Box::new(store_write_seconds.clone()))?;
        registry.register(Box::new(store_errors.clone()))?;
        registry.register(Box::new(conversations_removed.clone()))?;
        let webhook_deliveries = IntCounterVec::new(
            Opts::new(
                "switchboard_webhook_deliveries_total",
                "Webhook deliveries finished, by outcome (delivered, failed)",
            ),
            &["outcome"],
        )?;
        let webhook_attempts = IntCounterVec::new(
            Opts::new(
                "switchboard_webhook_attempts_total",
                "Webhook delivery attempts, by result (delivered, retryable, refused)",
            ),
            &["result"],
        )?;
        let webhook_queue = IntGauge::new(
            "switchboard_webhook_queue",
            "Webhook deliveries pending in this process (queued or waiting for a retry)",
        )?;
        let webhook_dropped = IntCounterVec::new(
            Opts::new(
                "switchboard_webhook_dropped_total",
                "Webhook events or deliveries dropped, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(webhook_deliveries.clone()))?;
        registry.register(Box::new(webhook_attempts.clone()))?;
        registry.register(Box::new(webhook_queue.clone()))?;
        registry.register(Box::new(webhook_dropped.clone()))?;
        let sessions_live = IntGauge::new(
            "switchboard_sessions_live",
            "Sessions this replica created within the last --unused-session-ttl",
        )?;
        let session_creations_refused = IntCounterVec::new(
            Opts::new(
                "switchboard_session_creations_refused_total",
                "session.create refused by a quota, by limit (per_minute, per_principal, process, contention)",
            ),
            &["limit"],
        )?;
        registry.register(Box::new(sessions_live.clone()))?;
        registry.register(Box::new(session_creations_refused.clone()))?;
        let turns_running = IntGauge::new(
            "switchboard_turns_running",
            "Turns holding a slot under --max-concurrent-turns on this replica",
        )?;
        let turns_waiting_for_slot = IntGauge::new(
            "switchboard_turns_waiting_for_slot",
            "Turns waiting for a slot under the caps on concurrent turns",
        )?;
        let turns_refused = IntCounterVec::new(
            Opts::new(
                "switchboard_turns_refused_total",
                "Turns not started, by reason (a cap on concurrent turns, or the org's token budget)",
            ),
            &["reason"],
        )?;
        let tokens = IntCounterVec::new(
            Opts::new(
                "switchboard_tokens_total",
                "Model tokens used by turns, by org (first --token-metrics-orgs orgs; the rest _other) and kind",
            ),
            &["org_id", "kind"],
        )?;
        registry.register(Box::new(turns_running.clone()))?;
        registry.register(Box::new(turns_waiting_for_slot.clone()))?;
        registry.register(Box::new(turns_refused.clone()))?;
        registry.register(Box::new(tokens.clone()))?;
        let tcp_connections = IntGauge::new(
            "switchboard_tcp_connections",
            "Open TCP connections (HTTP and WebSocket) this replica admitted",
        )?;
        let connections_refused = IntCounterVec::new(
            Opts::new(
                "switchboard_connections_refused_total",
                "TCP connections and WebSocket upgrades refused by a limit, by limit",
            ),
            &["limit"],
        )?;
        let refusals_unanswered = IntCounter::new(
            "switchboard_connections_refused_unanswered_total",
            "Refused TCP connections closed without an answer (too many refusals in flight)",
        )?;
        let http_timeouts = IntCounterVec::new(
            Opts::new(
                "switchboard_http_timeouts_total",
                "Connections closed, or upgrades refused, for taking too long, by phase (header, idle, ws_handshake)",
            ),
            &["phase"],
        )?;
        registry.register(Box::new(tcp_connections.clone()))?;
        registry.register(Box::new(connections_refused.clone()))?;
        registry.register(Box::new(refusals_unanswered.clone()))?;
        registry.register(Box::new(http_timeouts.clone()))?;
        let sse_streams = IntGauge::new(
            "switchboard_sse_streams",
            "Open SSE event streams (GET /v1/sessions/{id}/stream)",
        )?;
        let sse_closes = IntCounterVec::new(
            Opts::new(
                "switchboard_sse_closes_total",
                "SSE event streams ended, by reason (client, slow_consumer, draining, token_expired, error)",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(sse_streams.clone()))?;
        registry.register(Box::new(sse_closes.clone()))?;
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "switchboard_config_reloads_total",
                "Configuration reloads (SIGHUP, POST /v1/admin/reload), by result (ok, rejected)",
            ),
            &["result"],
        )?;
        let time_to_first_token = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "switchboard_time_to_first_token_seconds",
                "From a turn's start to its first turn.delta",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let model_call_seconds = HistogramVec::new(
            HistogramOpts::new(
                "switchboard_model_call_seconds",
                "Model requests from the request to the end of their stream, by provider and outcome (ok, error, cancelled)",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["provider", "outcome"],
        )?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "switchboard_http_requests_total",
                "HTTP requests answered, by method, route template and status class",
            ),
            &["method", "route", "status"],
        )?;
        let http_request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "switchboard_http_request_seconds",
                "HTTP request latency to the response head, by method and route template",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["method", "route"],
        )?;
        let start_time = prometheus::Gauge::new(
            "switchboard_start_time_seconds",
            "When this process started, seconds since the Unix epoch",
        )?;
        start_time.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
        let uptime = prometheus::Gauge::new(
            "switchboard_uptime_seconds",
            "Seconds since this process started",
        )?;
        registry.register(Box::new(config_reloads.clone()))?;
        registry.register(Box::new(time_to_first_token.clone()))?;
        registry.register(Box::new(model_call_seconds.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_request_seconds.clone()))?;
        registry.register(Box::new(start_time.clone()))?;
        registry.register(Box::new(uptime.clone()))?;
        Ok(Metrics {
            registry,
            connections,
            tasks_alive,
            frames_received,
            events_appended,
            events_delivered,
            streams_subscribed,
            turns,
            tool_calls,
            turn_takeovers,
            turns_replica_lost,
            replica_heartbeat_failures,
            disconnects,
            errors_sent,
            backplane_seconds,
            backplane_errors,
            transcript_queue,
            transcript_entries,
            store_write_seconds,
            store_errors,
            conversations_removed,
            webhook_deliveries,
            webhook_attempts,
            webhook_queue,
            webhook_dropped,
            presence_members,
            presence_sessions,
            presence_refused,
            typing_frames,
            presence_hints_dropped,
            sessions_live,
            session_creations_refused,
            turns_running,
            turns_waiting_for_slot,
            turns_refused,
            tokens,
            documents_refused,
            documents_read,
            replay_bytes,
            sync_chats_waiting,
            sync_chats_refused,
            tcp_connections,
            connections_refused,
            refusals_unanswered,
            http_timeouts,
            sse_streams,
            sse_closes,
            config_reloads,
            time_to_first_token,
            model_call_seconds,
            http_requests,
            http_request_seconds,
            start_time,
            uptime,
            started: std::time::Instant::now(),
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let alive = runtime.metrics().num_alive_tasks();
            self.tasks_alive
                .set(i64::try_from(alive).unwrap_or(i64::MAX));
        }
        self.uptime.set(self.started.elapsed().as_secs_f64());
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }

    /// Record one backplane operation's latency and outcome.
    pub fn observe_backplane<T, E>(
        &self,
        op: &str,
        started: std::time::Instant,
        result: &Result<T, E>,
    ) {
        self.backplane_seconds
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.backplane_errors.with_label_values(&[op]).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_as_prometheus_text() {
        let m = Metrics::new().unwrap();
        m.connections.set(3);
        m.turns.with_label_values(&["completed"]).inc();
        let text = m.render().unwrap();
        assert!(text.contains("switchboard_connections 3"), "{text}");
        assert!(
            text.contains("switchboard_turns_total{status=\"completed\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn rendering_counts_the_tasks_alive_in_the_runtime() {
        let m = Metrics::new().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let tasks: Vec<_> = (0..3)
            .map(|_| tokio::spawn(async move { std::future::pending::<()>().await }))
            .collect();
        let waiting = tokio::spawn(async move { stopped.await.ok() });
        let text = m.render().unwrap();
        assert!(text.contains("switchboard_tokio_tasks_alive 4"), "{text}");
        for task in &tasks {
            task.abort();
        }
        stop.send(()).unwrap();
        for task in tasks {
            let _ = task.await;
        }
        waiting.await.unwrap();
        let text = m.render().unwrap();
        assert!(text.contains("switchboard_tokio_tasks_alive 0"), "{text}");
    }
}
