//! Every permission decision of the gateway. Handlers gather the facts (who is asking,
//! the session record, the tool call) and ask here; nothing else in the crate reads a
//! role or compares an org to decide what a caller may do.
//!
//! | action | who may | otherwise |
//! |---|---|---|
//! | join a session (and replay it) | its owner; an `operator`/`admin` of its org; for an anonymous session, whoever presents its key (same org) | `not_found` |
//! | send, cancel, decide, type in a session over the WebSocket | a connection that joined it | `forbidden` |
//! | decide a tool call | its asker; an `operator`/`admin` of its org whose groups include all the asker's; in an anonymous session any member | other org: `not_found`; else `forbidden` |
//! | start an AI turn with a message | customers: the owner; in an anonymous session its key holders (staff messages are `operator` messages) | no turn |
//! | retrieve documents for a turn | with the access of everyone who receives the answer: the asker, who is the owner | never seen |
//! | request a person (`handoff.request`) | a member who joined | `forbidden` |
//! | claim a conversation, read the inbox | an `operator`/`admin` of its org | other org: `not_found`; else `forbidden` |
//! | release a conversation | the operator holding it; an `admin` of its org; staff when nobody holds it (waiting) | other org: `not_found`; else `forbidden` |
//! | `auth.refresh` | a token for the same `sub` and org as the connection | `forbidden` |
//! | publish | a publisher key (anywhere); a token with role `publisher` (its own org) | `forbidden`; another org's session: `not_found` |
//! | post an operator message | a publisher key; a token with role `operator` or `publisher` (own org) | `forbidden`; another org's session: `not_found` |
//! | read a session's history over HTTP | publisher and admin keys; the owner's token; an `admin` token of its org | `not_found` |
//! | read a session's event stream over HTTP (SSE) | a token or an anonymous visitor as for joining it; publisher and admin keys as for its history | `not_found` |
//! | administer an org (documents, model settings) | an admin key (any org); a token with role `admin` (its own org) | `forbidden` |
//! | reload the gateway's configuration (`POST /v1/admin/reload`) | an admin key; a token with role `admin` (any org: a reload re-reads only what the operator deployed) | `forbidden` |
//! | read a document (prompt, reply, `sources`) | its org's members: all of them if `public` (anonymous visitors too), the users and groups its ACL names, or every authenticated member if it names none | never seen |
//!
//! Decisions on conversations as records (list, rename, delete, export, erase) are in
//! [`conversations`], with their own table; how a member appears in presence (owner,
//! staff, or counted only) in [`presence`].
//!
//! A session of another org always answers `not_found`, exactly like one that does
//! not exist: nobody learns that it does (docs/protocol.md §3, §6).

use serde::{Deserialize, Serialize};

use super::{AccessContext, Caller};
use crate::error::ClientError;
use crate::records::sessions::SessionRecord;

/// Role that may join any session of its org (human handoff).
pub const ROLE_OPERATOR: &str = "operator";
/// Role that administers its org.
pub const ROLE_ADMIN: &str = "admin";
/// Role that may publish into its org's streams.
pub const ROLE_PUBLISHER: &str = "publisher";

/// Why a caller may not do something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Answer `not_found`, exactly as if the thing did not exist.
    Hide,
    /// Answer `forbidden` with this reason.
    Forbid(&'static str),
}

impl Refusal {
    /// The error a client gets: `hidden()` (a `not_found` that reads exactly as for a
    /// thing that does not exist there), or `forbidden` with the reason.
    pub fn into_error(self, hidden: impl FnOnce() -> ClientError) -> ClientError {
        match self {
            Refusal::Hide => hidden(),
            Refusal::Forbid(why) => ClientError::forbidden(why),
        }
    }
}

/// Allowed (`Ok`), or why not.
pub type Decision = Result<(), Refusal>;

fn allow_if(allowed: bool, otherwise: Refusal) -> Decision {
    if allowed { Ok(()) } else { Err(otherwise) }
}

fn has_role(access: &AccessContext, role: &str) -> bool {
    access.roles.iter().any(|r| r == role)
}

fn is_operator_or_admin(access: &AccessContext) -> bool {
    has_role(access, ROLE_OPERATOR) || has_role(access, ROLE_ADMIN)
}

// ---------------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------------

/// Who may read a document, within its org.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
}

/// Reading a document of `org` under `acl` (docs/protocol.md §7): same org, and
/// public, or naming the user or one of their groups, or org-wide (no users, no
/// groups, not public) for any authenticated member. Anonymous connections see public
/// documents only. A document that is not allowed is never seen: it does not reach a
/// prompt, a reply or `sources`, and does not change any search score.
pub fn read_document(who: &AccessContext, org: &str, acl: &Acl) -> Decision {
    if org != who.org_id {
        return Err(Refusal::Hide);
    }
    if acl.public {
        return Ok(());
    }
    if who.anonymous {
        return Err(Refusal::Hide);
    }
    let names_user = who.user_id.as_ref().is_some_and(|u| acl.users.contains(u));
    let names_group = who.groups.iter().any(|g| acl.groups.contains(g));
    let org_wide = acl.users.is_empty() && acl.groups.is_empty();
    allow_if(names_user || names_group || org_wide, Refusal::Hide)
}

// ---------------------------------------------------------------------------------
// Over the WebSocket
// ---------------------------------------------------------------------------------

/// `session.join` (and `session.create`'s implicit join is always allowed): the
/// session's customer — its owner, or for an anonymous session whoever presents its
/// key — and staff of its org (`operator`, `admin`), who answer anonymous visitors
/// too. The key is compared in constant time by the record.
pub fn join(who: &AccessContext, session: &SessionRecord, key: Option<&str>) -> Decision {
    if session.org_id != who.org_id {
        return Err(Refusal::Hide);
    }
    let customer = if session.key_sha256.is_some() {
        key.is_some_and(|key| session.key_matches(key))
    } else {
        session.owner.is_some() && session.owner == who.user_id
    };
    allow_if(customer || is_operator_or_admin(who), Refusal::Hide)
}

/// `message.send`, `turn.cancel`, `tool.decide`, `typing`: membership is per
/// connection.
pub fn act_in_session(joined: bool) -> Decision {
    allow_if(
        joined,
        Refusal::Forbid("join the session first (session.join), then send to it"),
    )
}

/// Who a member speaks as in a session: the customer whose conversation it is (the
/// owner; in an anonymous session, whoever holds its key), or staff of its org (an
/// `operator` or `admin` who joined someone else's conversation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voice {
    /// Their message is a `user` message and starts an AI turn.
    Customer,
    /// Their message is an `operator` message and never starts an AI turn.
    Staff,
}

/// The voice of `who`, a member of `session` (membership is checked by `join`).
pub fn voice(who: &AccessContext, session: &SessionRecord) -> Voice {
    let owns = session.owner.is_some() && session.owner == who.user_id && !who.anonymous;
    if !owns && who.org_id == session.org_id && is_operator_or_admin(who) {
        Voice::Staff
    } else {
        Voice::Customer
    }
}

/// The access a turn's retrieval runs with: only documents that **every principal
/// who receives its answer** may read reach the prompt, the reply or `sources`
/// (docs/protocol.md §7). Only customers start turns (see [`voice`]): the asker is the
/// session's owner, or in an anonymous session one of its anonymous key holders, so
/// the asker's access is the owner's. Staff who joined receive the answer too: they
/// see what the customer sees, which is what joining a customer's conversation grants.
/// `None` when `asker` may not start a turn in `session`.
pub fn turn_audience<'a>(
    asker: &'a AccessContext,
    session: &SessionRecord,
) -> Option<&'a AccessContext> {
    (voice(asker, session) == Voice::Customer && asker.org_id == session.org_id).then_some(asker)
}

/// `tool.decide` on a call waiting in a session of `call_org`, asked by `asker` (the
/// principal whose message started the turn; the call runs with its identity). Its
/// asker decides; so may an `operator` or `admin` of the org whose groups cover every
/// group of the asker (they could see all the asker sees). In an anonymous session
/// (an anonymous asker) every member decides: joining it took the session key.
pub fn decide_tool(who: &AccessContext, call_org: &str, asker: &AccessContext) -> Decision {
    if call_org != who.org_id {
        return Err(Refusal::Hide);
    }
    let is_asker = !who.anonymous && who.user_id.is_some() && who.user_id == asker.user_id;
    let covers = is_operator_or_admin(who) && asker.groups.iter().all(|g| who.groups.contains(g));
    allow_if(
        asker.anonymous || is_asker || covers,
        Refusal::Forbid(
            "only the member who asked, or an operator of the org whose groups include all of the asker's, may decide this tool call",
        ),
    )
}

/// Whether `who` is staff of `org`: an `operator` or `admin` there. Staff receive the
/// org's inbox and may claim its conversations.
pub fn is_staff_of(who: &AccessContext, org: &str) -> bool {
    who.org_id == org && !who.anonymous && is_operator_or_admin(who)
}

/// `inbox.list` and the staff stream: the org's staff only.
pub fn read_inbox(who: &AccessContext) -> Decision {
    allow_if(
        is_staff_of(who, &who.org_id),
        Refusal::Forbid("only operators and admins of the org see its inbox"),
    )
}

/// `handoff.claim` of a session of another org is hidden; in the org, staff only.
pub fn claim_handoff(who: &AccessContext, session: &SessionRecord) -> Decision {
    if session.org_id != who.org_id {
        return Err(Refusal::Hide);
    }
    allow_if(
        is_staff_of(who, &session.org_id),
        Refusal::Forbid("only operators and admins of the org may take a conversation"),
    )
}

/// `handoff.release` of a conversation held by `holder`: the holder, or an admin of
/// the org (who may return any conversation to the assistant).
pub fn release_handoff(
    who: &AccessContext,
    session: &SessionRecord,
    holder: Option<&str>,
) -> Decision {
    if session.org_id != who.org_id {
        return Err(Refusal::Hide);
    }
    let holds = holder.is_some() && holder == who.user_id.as_deref() && !who.anonymous;
    let admin = has_role(who, ROLE_ADMIN);
    let staff = is_staff_of(who, &session.org_id);
    allow_if(
        staff && (holds || admin || holder.is_none()),
        Refusal::Forbid(
            "only the operator holding this conversation, or an admin of the org, may give it back",
        ),
    )
}

/// `auth.refresh`: same user (sub) and org only; groups and roles may change.
pub fn refresh(current: &AccessContext, renewed: &AccessContext) -> Decision {
    let same = !current.anonymous
        && renewed.user_id == current.user_id
        && renewed.org_id == current.org_id;
    allow_if(
        same,
        Refusal::Forbid(
            "auth.refresh must carry a token for the same user (sub) and org as the connection; reconnect to change identity",
        ),
    )
}

// ---------------------------------------------------------------------------------
// Over HTTP
// ---------------------------------------------------------------------------------

/// A caller allowed to publish, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// The event's `publisher`: the key's name, or the token's user.
    pub name: String,
    /// The only org it may publish into; `None` for a publisher key (any org).
    pub org: Option<String>,
}

/// Whether `caller` may publish at all.
pub fn publisher(caller: &Caller) -> Result<Publisher, Refusal> {
    match caller {
        Caller::PublisherKey { name } => Ok(Publisher {
            name: name.clone(),
            org: None,
        }),
        Caller::Token(access) if has_role(access, ROLE_PUBLISHER) => Ok(Publisher {
            name: access.user_id.clone().unwrap_or_else(|| "publisher".into()),
            org: Some(access.org_id.clone()),
        }),
        _ => Err(Refusal::Forbid(
            "these credentials may not publish (needs a publisher key or role publisher)",
        )),
    }
}

/// Where a publish goes, as far as permission goes.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A session: its record's org, `None` when there is no such session.
    Session { org: Option<&'a str> },
    /// A user's connections (a token publishes to its own org's users only).
    User,
    /// Every connection of an org.
    Org { org: &'a str },
}

/// Whether `publisher` may publish to `target`; `on_behalf_of` is the request's
/// `org_id`, which a token may only set to its own org.
pub fn publish(publisher: &Publisher, on_behalf_of: Option<&str>, target: Target<'_>) -> Decision {
    let own = publisher.org.as_deref();
    if let (Some(own), Some(given)) = (own, on_behalf_of)
        && own != given
    {
        return Err(Refusal::Forbid(
            "these credentials may not publish on behalf of another org",
        ));
    }
    match target {
        Target::Session { org: None } => Err(Refusal::Hide),
        Target::Session { org: Some(org) } => {
            allow_if(own.is_none_or(|own| own == org), Refusal::Hide)
        }
        Target::User => Ok(()),
        Target::Org { org } => allow_if(
            own.is_none_or(|own| own == org),
            Refusal::Forbid("these credentials may not publish to another org"),
        ),
    }
}

/// A caller allowed to post operator messages (human handoff), and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The message's default `author`.
    pub name: String,
    /// The only org it may post into; `None` for a publisher key.
    pub org: Option<String>,
}

/// Whether `caller` may post operator messages at all.
pub fn operator(caller: &Caller) -> Result<Operator, Refusal> {
    match caller {
        Caller::PublisherKey { name } => Ok(Operator {
            name: name.clone(),
            org: None,
        }),
        Caller::Token(access)
            if has_role(access, ROLE_OPERATOR) || has_role(access, ROLE_PUBLISHER) =>
        {
            Ok(Operator {
                name: access.user_id.clone().unwrap_or_else(|| "operator".into()),
                org: Some(access.org_id.clone()),
            })
        }
        _ => Err(Refusal::Forbid(
            "these credentials may not post operator messages (needs role operator or publisher)",
        )),
    }
}

/// Whether `operator` may post into `session` (`None`: no such session).
pub fn post_operator_message(operator: &Operator, session: Option<&SessionRecord>) -> Decision {
    match session {
        Some(record) => allow_if(
            operator
                .org
                .as_ref()
                .is_none_or(|org| *org == record.org_id),
            Refusal::Hide,
        ),
        None => Err(Refusal::Hide),
    }
}

/// `GET /v1/sessions/{id}/events` of `session` (`None`: no such session).
pub fn read_history(caller: &Caller, session: Option<&SessionRecord>) -> Decision {
    let Some(record) = session else {
        return Err(Refusal::Hide);
    };
    let allowed = match caller {
        Caller::PublisherKey { .. } | Caller::AdminKey { .. } => true,
        Caller::Token(access) => {
            access.org_id == record.org_id
                && (has_role(access, ROLE_ADMIN)
                    || (record.owner.is_some() && record.owner == access.user_id))
        }
    };
    allow_if(allowed, Refusal::Hide)
}

/// `GET /v1/sessions/{id}/stream` of `session` (`None`: no such session). The stream is
/// a member's view of the session: a token (or an anonymous visitor, with the
/// session's key) may read it exactly when it may join it over the WebSocket; an API
/// key exactly when it may read the session's history.
pub fn read_stream(
    caller: &Caller,
    session: Option<&SessionRecord>,
    key: Option<&str>,
) -> Decision {
    let Some(record) = session else {
        return Err(Refusal::Hide);
    };
    match caller {
        Caller::Token(access) => join(access, record, key),
        Caller::PublisherKey { .. } | Caller::AdminKey { .. } => read_history(caller, Some(record)),
    }
}

/// Whether `caller` may open sessions over HTTP (`POST /v1/sessions`, `POST /v1/chat`
/// without a session): a session belongs to a principal, so a JWT or an anonymous
/// visitor (where `--allow-anonymous` lets one in); API keys are a backend's, not a
/// person's, and open none.
pub fn open_session(caller: &Caller) -> Result<&AccessContext, Refusal> {
    match caller {
        Caller::Token(access) => Ok(access),
        Caller::PublisherKey { .. } | Caller::AdminKey { .. } => Err(Refusal::Forbid(
            "API keys do not own sessions: open one with the user's JWT (or anonymously, where allowed)",
        )),
    }
}

/// **May this HTTP caller read and act in `session`** (`None`: no such session), as
/// a WebSocket connection that joined it could: send, cancel a turn, decide a tool
/// call, read its turns and its live events. The same rule as [`join`]: its owner,
/// staff of its org, or for an anonymous session whoever presents its key
/// (`Switchboard-Session-Key`, compared in constant time); anything else is hidden.
/// API keys are no session's members (`forbidden`). The principal acting is the
/// answer.
pub fn http_member<'a>(
    caller: &'a Caller,
    session: Option<&SessionRecord>,
    key: Option<&str>,
) -> Result<&'a AccessContext, Refusal> {
    let Caller::Token(access) = caller else {
        return Err(Refusal::Forbid(
            "API keys are no session's members: act in a session with its owner's JWT, an operator's, or its session key",
        ));
    };
    let Some(record) = session else {
        return Err(Refusal::Hide);
    };
    join(access, record, key)?;
    Ok(access)
}

/// `POST /v1/chat` into an existing `session`: a member ([`http_member`]) who
/// speaks as its customer, since only a customer's message starts the turn the chat
/// waits for; staff post operator messages with `POST /v1/sessions/{id}/messages`.
pub fn http_chat<'a>(
    caller: &'a Caller,
    session: Option<&SessionRecord>,
    key: Option<&str>,
) -> Result<&'a AccessContext, Refusal> {
    let access = http_member(caller, session, key)?;
    match session.map(|record| voice(access, record)) {
        Some(Voice::Customer) => Ok(access),
        _ => Err(Refusal::Forbid(
            "staff messages start no AI turn, so there is no reply to wait for: post them with POST /v1/sessions/{id}/messages",
        )),
    }
}

/// Who posts `POST /v1/sessions/{id}/messages`, and so what the message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpSpeaker<'a> {
    /// The session's customer (its owner; in an anonymous session a key holder): a
    /// `user` message that queues an AI turn.
    Customer(&'a AccessContext),
    /// Staff of its org who may act in it, a publisher key, or a token with role
    /// `operator` or `publisher` of its org: an `operator` message, and no turn.
    Operator(Operator),
}

/// The voice of an HTTP message into `session` (`None`: no such session), as on the
/// WebSocket ([`voice`]): a member speaks as the customer or as staff. Callers who
/// are no member may still post operator messages when [`operator`] allows it
/// (backends, human handoff). An anonymous caller without the session's key is
/// hidden; a JWT that may do neither is refused as [`operator`] refuses it.
pub fn http_speaker<'a>(
    caller: &'a Caller,
    session: Option<&SessionRecord>,
    key: Option<&str>,
) -> Result<HttpSpeaker<'a>, Refusal> {
    if let (Ok(access), Some(record)) = (http_member(caller, session, key), session) {
        return Ok(match voice(access, record) {
            Voice::Customer => HttpSpeaker::Customer(access),
            Voice::Staff => HttpSpeaker::Operator(Operator {
                name: access
                    .name
                    .clone()
                    .or_else(|| access.user_id.clone())
                    .unwrap_or_else(|| "operator".into()),
                org: Some(access.org_id.clone()),
            }),
        });
    }
    if let Caller::Token(access) = caller
        && access.anonymous
    {
        return Err(Refusal::Hide);
    }
    let operator = operator(caller)?;
    post_operator_message(&operator, session)?;
    Ok(HttpSpeaker::Operator(operator))
}

/// Which orgs a caller may administer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminScope {
    /// An admin key: any org, which the request must name.
    AnyOrg,
    /// A token with role `admin`: its own org only.
    OwnOrg(String),
}

/// Whether `caller` may administer `requested` (the request's `org_id`, if any).
pub fn administer(caller: &Caller, requested: Option<&str>) -> Result<AdminScope, Refusal> {
    match caller {
        Caller::AdminKey { .. } => Ok(AdminScope::AnyOrg),
        Caller::Token(access) if has_role(access, ROLE_ADMIN) => match requested {
            Some(org) if org != access.org_id => Err(Refusal::Forbid(
                "these credentials may not administer another org",
            )),
            _ => Ok(AdminScope::OwnOrg(access.org_id.clone())),
        },
        _ => Err(Refusal::Forbid(
            "these credentials may not administer an org (needs an admin key or role admin)",
        )),
    }
}

mod conversations;
mod presence;

pub use conversations::{ConversationAction, ListScope, list_org, list_own, manage_conversation};
pub use presence::presence_member;

/// `POST /v1/admin/reload`: re-read the configuration the operator deployed. A caller
/// chooses nothing in it, so any admin may ask; nobody else.
pub fn reload_configuration(caller: &Caller) -> Decision {
    match caller {
        Caller::AdminKey { .. } => Ok(()),
        Caller::Token(access) if has_role(access, ROLE_ADMIN) => Ok(()),
        _ => Err(Refusal::Forbid(
            "these credentials may not reload the configuration (needs an admin key or role admin)",
        )),
    }
}

/// The org an admin request acts on: the one an admin key names (`requested` is
/// required), or a JWT admin's own. `forbidden` for callers who administer nothing
/// or name another org.
pub fn administered_org(caller: &Caller, requested: Option<&str>) -> Result<String, ClientError> {
    match administer(caller, requested).map_err(|r| r.into_error(ClientError::session_not_found))? {
        AdminScope::AnyOrg => {
            let org = requested
                .ok_or_else(|| ClientError::bad_request("org_id is required with an admin key"))?;
            if org.contains('@') || !switchboard_protocol::StreamName::valid_id(org) {
                return Err(ClientError::bad_request(
                    "org_id must be an org id: 1 to 256 characters of A-Z, a-z, 0-9, '_', '-'",
                ));
            }
            Ok(org.to_string())
        }
        AdminScope::OwnOrg(org) => Ok(org),
    }
}

#[cfg(test)]
mod tests;
