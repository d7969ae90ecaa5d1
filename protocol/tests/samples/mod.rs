//! One sample of every frame and event, shared by the round-trip and schema tests.
#![allow(dead_code)]

use serde_json::{Value, json};
use switchboard_protocol::client::{
    AuthRefresh, MessageSend, SessionCreate, SessionJoin, SessionLeave, ToolDecide, TurnCancel,
};
use switchboard_protocol::conversation::{
    ErasureReport, ExportFormat, ListScope, SessionDelete, SessionExport, SessionList,
    SessionListing, SessionState, SessionSummary, SessionUpdate, UserErase,
};
use switchboard_protocol::handoff::{
    Handoff, HandoffBy, HandoffRequest, HandoffState, HandoffTarget, Inbox, InboxEntry, InboxList,
    Staffer,
};
use switchboard_protocol::presence::{PresenceChange, PresenceSnapshot, Typing, TypingNotice};
use switchboard_protocol::{
    ClientFrame, ErrorCode, EventBody, Limits, PresenceMember, PresenceRole, Principal, Role,
    ServerFrame, Source, TurnEndCode, TurnStatus, Usage,
};

pub fn every_client_frame() -> Vec<ClientFrame> {
    let mut metadata = serde_json::Map::new();
    metadata.insert("page".into(), json!("/pricing"));
    vec![
        ClientFrame::Ping {},
        ClientFrame::SessionCreate(SessionCreate {
            metadata: None,
            assistant: None,
        }),
        ClientFrame::SessionCreate(SessionCreate {
            metadata: Some(metadata),
            assistant: None,
        }),
        ClientFrame::SessionJoin(SessionJoin {
            session_id: "s_1".into(),
            after_seq: Some(41),
            session_key: Some("k_x".into()),
        }),
        ClientFrame::SessionJoin(SessionJoin {
            session_id: "s_1".into(),
            after_seq: None,
            session_key: None,
        }),
        ClientFrame::SessionLeave(SessionLeave {
            session_id: "s_1".into(),
        }),
        ClientFrame::MessageSend(MessageSend {
            session_id: "s_1".into(),
            text: "héllo \"world\" <b>".into(),
            client_message_id: Some("cm-1".into()),
        }),
        ClientFrame::TurnCancel(TurnCancel {
            session_id: "s_1".into(),
            turn_id: "t_1".into(),
        }),
        ClientFrame::ToolDecide(ToolDecide {
            session_id: "s_1".into(),
            call_id: "call_1".into(),
            approved: true,
        }),
        ClientFrame::AuthRefresh(AuthRefresh {
            token: "eyJ...".into(),
        }),
        ClientFrame::SessionList(SessionList {
            scope: ListScope::Org,
            owner: Some("u1".into()),
            state: Some(SessionState::Archived),
            active_since: Some(1_795_000_000_000),
            active_before: Some(1_796_000_000_000),
            cursor: Some("MTc5NTAwMDAwMDAwMDpzXzE".into()),
            limit: Some(50),
        }),
        ClientFrame::SessionList(SessionList::default()),
        ClientFrame::SessionUpdate(SessionUpdate {
            session_id: "s_1".into(),
            title: Some("Refund for order 42".into()),
            state: Some(SessionState::Active),
        }),
        ClientFrame::SessionDelete(SessionDelete {
            session_id: "s_1".into(),
        }),
        ClientFrame::SessionExport(SessionExport {
            session_id: "s_1".into(),
            format: ExportFormat::Markdown,
        }),
        ClientFrame::UserErase(UserErase {
            user_id: "u1".into(),
        }),
        ClientFrame::HandoffRequest(HandoffRequest {
            session_id: "s_1".into(),
            reason: Some("I want a refund".into()),
        }),
        ClientFrame::HandoffClaim(HandoffTarget {
            session_id: "s_1".into(),
        }),
        ClientFrame::HandoffRelease(HandoffTarget {
            session_id: "s_1".into(),
        }),
        ClientFrame::InboxList(InboxList { limit: Some(20) }),
        ClientFrame::Typing(Typing {
            session_id: "s_1".into(),
            typing: true,
        }),
        ClientFrame::Typing(Typing {
            session_id: "s_1".into(),
            typing: false,
        }),
    ]
}

fn held() -> Handoff {
    Handoff {
        state: HandoffState::Human,
        operator: Some(Staffer {
            user_id: "olga".into(),
            name: Some("Dana".into()),
        }),
        reason: Some("I want a refund".into()),
        since: 1_795_000_070_000,
    }
}

fn dana() -> PresenceMember {
    PresenceMember {
        user_id: Some("op-dana".into()),
        name: Some("Dana".into()),
        role: PresenceRole::Operator,
    }
}

fn summary() -> SessionSummary {
    let mut metadata = serde_json::Map::new();
    metadata.insert("page".into(), serde_json::json!("/pricing"));
    SessionSummary {
        session_id: "s_1".into(),
        org_id: "acme".into(),
        owner: Some("u1".into()),
        title: Some("How do refunds work?".into()),
        state: SessionState::Active,
        created_at: 1_795_000_000_000,
        last_activity_at: 1_795_000_060_000,
        last_seq: 42,
        preview: Some("Within 30 days of purchase…".into()),
        metadata: Some(metadata),
        assistant: None,
    }
}

pub fn every_server_frame() -> Vec<ServerFrame> {
    vec![
        ServerFrame::Welcome {
            protocol: 1,
            connection_id: "c_1".into(),
            server_id: "replica-a".into(),
            principal: Principal {
                user_id: Some("u1".into()),
                org_id: "acme".into(),
                groups: vec!["support".into()],
                roles: vec!["operator".into()],
                anonymous: false,
                name: None,
            },
            heartbeat_ms: 25000,
            limits: Limits {
                max_frame_bytes: 65536,
                max_text_chars: 8000,
                max_frames_per_second: 20,
                max_sessions_per_connection: 16,
            },
        },
        ServerFrame::Welcome {
            protocol: 1,
            connection_id: "c_2".into(),
            server_id: "replica-a".into(),
            principal: Principal {
                user_id: None,
                org_id: "acme".into(),
                groups: vec![],
                roles: vec![],
                anonymous: true,
                name: None,
            },
            heartbeat_ms: 25000,
            limits: Limits {
                max_frame_bytes: 65536,
                max_text_chars: 8000,
                max_frames_per_second: 20,
                max_sessions_per_connection: 16,
            },
        },
        ServerFrame::Pong {},
        ServerFrame::SessionCreated {
            session_id: "s_1".into(),
            session_key: Some("k_1".into()),
            seq: 0,
            assistant: None,
        },
        ServerFrame::SessionCreated {
            session_id: "s_1".into(),
            session_key: None,
            seq: 3,
            assistant: None,
        },
        ServerFrame::SessionJoined {
            session_id: "s_1".into(),
            last_seq: 9,
            recovered: false,
            assistant: None,
        },
        ServerFrame::SessionLeft {
            session_id: "s_1".into(),
        },
        ServerFrame::MessageAccepted {
            session_id: "s_1".into(),
            message_id: "m_1".into(),
            seq: 4,
        },
        ServerFrame::ToolDecided {
            session_id: "s_1".into(),
            call_id: "call_1".into(),
            approved: false,
        },
        ServerFrame::AuthRefreshed {
            expires_at: 1_900_000_000,
        },
        ServerFrame::SessionListed(SessionListing {
            sessions: vec![
                summary(),
                SessionSummary {
                    owner: None,
                    title: None,
                    preview: None,
                    metadata: None,
                    state: SessionState::Archived,
                    ..summary()
                },
            ],
            next_cursor: Some("MTc5NTAwMDAwMDAwMDpzXzE".into()),
        }),
        ServerFrame::SessionUpdated { session: summary() },
        ServerFrame::SessionDeleted {
            session_id: "s_1".into(),
        },
        ServerFrame::SessionExported {
            session_id: "s_1".into(),
            format: ExportFormat::Json,
            content: "{\"session\":{},\"events\":[]}".into(),
        },
        ServerFrame::UserErased(ErasureReport {
            org_id: "acme".into(),
            user_id: "u1".into(),
            sessions: vec!["s_1".into(), "s_2".into()],
            transcript_entries: 12,
            records: 3,
        }),
        ServerFrame::HandoffUpdated {
            session_id: "s_1".into(),
            handoff: held(),
        },
        ServerFrame::InboxListed(Inbox {
            sessions: vec![InboxEntry {
                session: summary(),
                handoff: held(),
            }],
        }),
        ServerFrame::Presence(PresenceSnapshot {
            session_id: "s_1".into(),
            members: vec![
                PresenceMember {
                    user_id: Some("u1".into()),
                    name: None,
                    role: PresenceRole::Owner,
                },
                dana(),
            ],
            others: 2,
        }),
        ServerFrame::Presence(PresenceSnapshot {
            session_id: "s_1".into(),
            members: vec![],
            others: 1,
        }),
        ServerFrame::PresenceChanged(PresenceChange {
            session_id: "s_1".into(),
            joined: vec![dana()],
            left: vec![],
            others: 0,
        }),
        ServerFrame::PresenceChanged(PresenceChange {
            session_id: "s_1".into(),
            joined: vec![],
            left: vec![dana()],
            others: 3,
        }),
        ServerFrame::Typing(TypingNotice {
            session_id: "s_1".into(),
            member: dana(),
            typing: true,
        }),
        ServerFrame::Typing(TypingNotice {
            session_id: "s_1".into(),
            member: PresenceMember {
                user_id: None,
                name: None,
                role: PresenceRole::Other,
            },
            typing: false,
        }),
        ServerFrame::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            retry_after_ms: None,
        },
        ServerFrame::Error {
            code: ErrorCode::RateLimited,
            message:
                "this visitor created 30 sessions in the last minute, the limit; retry in 12 s"
                    .into(),
            retry_after_ms: Some(12_000),
        },
        ServerFrame::Goaway {
            reason: "draining".into(),
        },
    ]
}

pub fn every_event_body() -> Vec<EventBody> {
    vec![
        EventBody::Message {
            message_id: "m_1".into(),
            role: Role::User,
            text: "Où est ma commande? 📦".into(),
            author: Some("u1".into()),
        },
        EventBody::Message {
            message_id: "m_2".into(),
            role: Role::Operator,
            text: "<img src=x onerror=alert(1)>".into(),
            author: None,
        },
        EventBody::TurnStart {
            turn_id: "t_1".into(),
            reply_to: "m_1".into(),
            assistant: None,
        },
        EventBody::TurnDelta {
            turn_id: "t_1".into(),
            text: "Hello, ".into(),
        },
        EventBody::ToolRequest {
            turn_id: "t_1".into(),
            call_id: "call_1".into(),
            tool: "lookup_order".into(),
            arguments: json!({"order_id": 42, "nested": {"a": [1, 2]}}),
            requires_approval: true,
        },
        EventBody::ToolResult {
            turn_id: "t_1".into(),
            call_id: "call_1".into(),
            ok: true,
            output: Some(json!({"status": "shipped"})),
            decided_by: Some("ann".into()),
        },
        EventBody::ToolResult {
            turn_id: "t_1".into(),
            call_id: "call_2".into(),
            ok: false,
            output: None,
            decided_by: None,
        },
        EventBody::TurnEnd {
            turn_id: "t_1".into(),
            status: TurnStatus::Completed,
            text: "Hello, world".into(),
            usage: Some(Usage {
                prompt_tokens: 10,
                completion_tokens: 2,
                total_tokens: 12,
            }),
            sources: Some(vec![Source {
                doc_id: "d1".into(),
                title: "Shipping".into(),
                uri: Some("https://example.com/shipping".into()),
            }]),
            error: None,
            code: None,
            retrying: None,
            assistant: None,
        },
        EventBody::TurnEnd {
            turn_id: "t_2".into(),
            status: TurnStatus::Failed,
            text: "Hel".into(),
            usage: None,
            sources: None,
            error: Some("upstream closed early".into()),
            code: None,
            retrying: None,
            assistant: None,
        },
        EventBody::TurnEnd {
            turn_id: "t_3".into(),
            status: TurnStatus::Failed,
            text: "Hel".into(),
            usage: None,
            sources: None,
            error: Some("the replica answering stopped; answering again".into()),
            code: Some(TurnEndCode::ReplicaLost),
            retrying: Some(true),
            assistant: None,
        },
        EventBody::Custom {
            name: "order.shipped".into(),
            data: json!({"order": 42, "items": ["a", "b"], "ok": true, "none": null}),
            publisher: Some("orders".into()),
            durable: false,
        },
        EventBody::Custom {
            name: "ping".into(),
            data: Value::Null,
            publisher: None,
            durable: false,
        },
        EventBody::Handoff {
            state: HandoffState::Waiting,
            by: HandoffBy::Customer,
            operator: None,
            reason: Some("I want a refund".into()),
            notice: Some("Someone from the team will be with you shortly.".into()),
        },
        EventBody::Handoff {
            state: HandoffState::Human,
            by: HandoffBy::Operator,
            operator: Some(Staffer {
                user_id: "olga".into(),
                name: None,
            }),
            reason: None,
            notice: None,
        },
        EventBody::InboxChanged {
            session: Box::new(summary()),
            handoff: Box::new(held()),
        },
    ]
}
