//! Decisions on conversations as records: listing, renaming, archiving, deleting,
//! exporting, erasing a user, and an org's retention.
//!
//! | action | who may | otherwise |
//! |---|---|---|
//! | list my conversations | a signed-in user (a token with `sub`) | `forbidden` |
//! | list an org's conversations | an `operator`/`admin` token (its org); an admin key (the org it names) | `forbidden` |
//! | read one (summary, export) | its owner; an `operator`/`admin` of its org; a connection that joined the anonymous session with its key; publisher and admin keys | `not_found` |
//! | rename, archive, delete one | its owner; an `admin` of its org; a connection that joined the anonymous session with its key; an admin key | operator: `forbidden`; else `not_found` |
//! | erase a user, set retention | an admin key (the org it names); an `admin` token (its org) | `forbidden` |

use super::{Decision, ROLE_ADMIN, Refusal, allow_if, has_role, is_operator_or_admin};
use crate::access::Caller;
use crate::records::sessions::SessionRecord;

/// What a caller wants to do with one conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationAction {
    /// See its summary or export its transcript.
    Read,
    /// Rename, archive or unarchive it.
    Change,
    /// Delete it for good.
    Delete,
}

/// Which conversations a listing may show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListScope {
    pub org_id: String,
    /// Only this owner's (`None`: the whole org).
    pub owner: Option<String>,
}

/// Listing the caller's own conversations.
pub fn list_own(caller: &Caller) -> Result<ListScope, Refusal> {
    match caller {
        Caller::Token(access) if !access.anonymous && access.user_id.is_some() => Ok(ListScope {
            org_id: access.org_id.clone(),
            owner: access.user_id.clone(),
        }),
        Caller::Token(_) => Err(Refusal::Forbid(
            "sign in to list conversations: an anonymous visitor keeps its one conversation by its session key",
        )),
        Caller::PublisherKey { .. } | Caller::AdminKey { .. } => Err(Refusal::Forbid(
            "API keys own no conversations; list an org's with scope \"org\" and an admin key",
        )),
    }
}

/// Listing an org's conversations (`requested`: the org an admin key names; `owner`:
/// only that user's).
pub fn list_org(
    caller: &Caller,
    requested: Option<&str>,
    owner: Option<&str>,
) -> Result<ListScope, Refusal> {
    let org_id = match caller {
        Caller::AdminKey { .. } => requested.map(str::to_string).ok_or(Refusal::Forbid(
            "an admin key lists the conversations of the org it names: give org_id",
        ))?,
        Caller::Token(access) if is_operator_or_admin(access) => match requested {
            Some(org) if org != access.org_id => {
                return Err(Refusal::Forbid(
                    "these credentials may not list another org's conversations",
                ));
            }
            _ => access.org_id.clone(),
        },
        _ => {
            return Err(Refusal::Forbid(
                "listing an org's conversations needs role operator or admin (or an admin key)",
            ));
        }
    };
    Ok(ListScope {
        org_id,
        owner: owner.map(str::to_string),
    })
}

/// `action` on `session` (`None`: no such session). `joined_with_key`: this
/// connection joined the session, which for an anonymous session proved its key.
pub fn manage_conversation(
    caller: &Caller,
    session: Option<&SessionRecord>,
    action: ConversationAction,
    joined_with_key: bool,
) -> Decision {
    let Some(record) = session else {
        return Err(Refusal::Hide);
    };
    match caller {
        Caller::AdminKey { .. } => Ok(()),
        Caller::PublisherKey { .. } => allow_if(
            action == ConversationAction::Read,
            Refusal::Forbid("a publisher key may read conversations, not change or delete them"),
        ),
        Caller::Token(access) => {
            if access.org_id != record.org_id {
                return Err(Refusal::Hide);
            }
            let owns = match &record.owner {
                Some(owner) => access.user_id.as_ref() == Some(owner),
                None => record.key_sha256.is_some() && joined_with_key,
            };
            if owns || has_role(access, ROLE_ADMIN) {
                return Ok(());
            }
            if is_operator_or_admin(access) {
                return allow_if(
                    action == ConversationAction::Read,
                    Refusal::Forbid(
                        "only the conversation's owner or an admin may rename, archive or delete it",
                    ),
                );
            }
            Err(Refusal::Hide)
        }
    }
}
