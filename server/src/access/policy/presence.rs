//! How a member appears in a session's presence (docs/protocol.md §3.15): named as
//! its owner, named as staff (`operator` or `admin` of the session's org), or counted
//! only. Sending `typing` is acting in the session: [`super::act_in_session`].

use switchboard_protocol::{PresenceMember, PresenceRole};

use super::{Voice, voice};
use crate::access::AccessContext;
use crate::records::sessions::SessionRecord;

/// `who`, a member of `session`, as the other members see it: its signed-in owner;
/// staff of the session's org (the members whose [`voice`] is staff: a signed-in
/// owner who is also staff is the owner); anyone else (an anonymous visitor with the
/// key, another signed-in user of an anonymous session) is counted, never named. The
/// display name is the token's.
pub fn presence_member(who: &AccessContext, session: &SessionRecord) -> PresenceMember {
    let owner = !who.anonymous && session.owner.is_some() && session.owner == who.user_id;
    let role = if owner {
        PresenceRole::Owner
    } else if voice(who, session) == Voice::Staff {
        PresenceRole::Operator
    } else {
        PresenceRole::Other
    };
    PresenceMember {
        user_id: who.user_id.clone(),
        name: if role == PresenceRole::Other {
            None
        } else {
            who.name.clone()
        },
        role,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(user: Option<&str>, roles: &[&str], name: Option<&str>) -> AccessContext {
        AccessContext {
            user_id: user.map(str::to_string),
            org_id: "acme".into(),
            groups: vec![],
            roles: roles.iter().map(|r| r.to_string()).collect(),
            anonymous: user.is_none(),
            name: name.map(str::to_string),
        }
    }

    fn session(owner: Option<&str>) -> SessionRecord {
        SessionRecord {
            session_id: "s_1".into(),
            org_id: "acme".into(),
            owner: owner.map(str::to_string),
            key_sha256: owner.is_none().then(|| "00".into()),
            created_at: 0,
            metadata: None,
            assistant: None,
        }
    }

    #[test]
    fn owners_and_staff_are_named_everyone_else_counted() {
        let cases = [
            (
                principal(Some("u1"), &[], Some("Ann")),
                Some("u1"),
                PresenceRole::Owner,
            ),
            (
                principal(Some("u1"), &["operator"], None),
                Some("u1"),
                PresenceRole::Owner,
            ),
            (
                principal(Some("dana"), &["operator"], Some("Dana")),
                Some("u1"),
                PresenceRole::Operator,
            ),
            (
                principal(Some("boss"), &["admin"], None),
                Some("u1"),
                PresenceRole::Operator,
            ),
            (
                principal(Some("pub"), &["publisher"], None),
                Some("u1"),
                PresenceRole::Other,
            ),
            (principal(None, &[], None), None, PresenceRole::Other),
            (
                principal(Some("u2"), &[], Some("Bo")),
                None,
                PresenceRole::Other,
            ),
            (
                principal(Some("dana"), &["operator"], Some("Dana")),
                None,
                PresenceRole::Operator,
            ),
        ];
        for (who, owner, role) in cases {
            let member = presence_member(&who, &session(owner));
            assert_eq!(member.role, role, "{who:?} in a session owned by {owner:?}");
            assert_eq!(member.user_id, who.user_id);
            if role == PresenceRole::Other {
                assert_eq!(member.name, None, "others are never named");
            } else {
                assert_eq!(member.name, who.name);
            }
        }
    }

    #[test]
    fn staff_of_another_org_is_not_staff_here() {
        let mut dana = principal(Some("dana"), &["operator"], Some("Dana"));
        dana.org_id = "globex".into();
        assert_eq!(
            presence_member(&dana, &session(None)).role,
            PresenceRole::Other
        );
    }
}
