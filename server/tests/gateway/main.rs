//! The gateway from outside: real `switchboard serve` processes (and real Redis and
//! NATS servers under several replicas) driven over WebSocket and HTTP, one module per
//! subject. One test binary, so the workspace's tests link the gateway's dependencies
//! once; [`support`] holds the clients and fakes the modules share. [`layers`] checks
//! the shape of `server/src` itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod access_hostile_credentials;
mod access_http;
mod access_jwt;
mod access_retrieval;
mod access_shared_sessions;
mod access_tenancy;
mod assistants;
mod chaos_turns;
mod conversations_durable;
mod conversations_erase;
mod conversations_lifecycle;
mod conversations_replicas;
mod cost_turns;
mod drain;
mod handoff;
mod http_console;
mod http_health_deep;
mod http_json_errors;
mod http_metrics;
mod http_ops;
mod http_sessions;
mod http_sse;
mod http_visitors;
mod layers;
mod model_openai;
mod model_prompt_tools;
mod model_tool_trust;
mod presence;
mod reload;
mod replicas_crash;
mod replicas_fanout;
mod replicas_faults;
mod replicas_shared_state;
mod replicas_turn_control;
mod traces;
mod webhooks;
mod ws_bad_input;
mod ws_heartbeat;
mod ws_resume;
mod ws_session_quotas;
mod ws_sessions;
mod ws_slow_consumer;
