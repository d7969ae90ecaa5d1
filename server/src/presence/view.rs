//! What members of a session are shown: every live replica's entry merged (each user
//! once), the named members listed up to [`MAX_LISTED_MEMBERS`], everyone else
//! counted; and the change between two views, as a `presence.changed`.

use std::collections::{BTreeMap, BTreeSet};

use switchboard_protocol::PresenceMember;
use switchboard_protocol::presence::{MAX_LISTED_MEMBERS, PresenceChange, PresenceSnapshot};

use super::record::Entry;

/// A session's presence as its members see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct View {
    /// Owner first, then operators, each ordered by user id; at most
    /// [`MAX_LISTED_MEMBERS`].
    pub(super) members: Vec<PresenceMember>,
    pub(super) others: u64,
}

impl View {
    /// The view of these entries (each replica's members).
    pub(super) fn merge<'a>(entries: impl Iterator<Item = &'a Entry>) -> View {
        let mut named: BTreeMap<&str, &PresenceMember> = BTreeMap::new();
        let mut users: BTreeSet<&str> = BTreeSet::new();
        let mut unnamed: u64 = 0;
        for entry in entries {
            for member in &entry.named {
                let Some(user) = member.user_id.as_deref() else {
                    continue;
                };
                let best = named.entry(user).or_insert(member);
                if member.role < best.role || (best.name.is_none() && member.role == best.role) {
                    *best = member;
                }
            }
            users.extend(entry.users.iter().map(String::as_str));
            unnamed = unnamed.saturating_add(entry.unnamed);
        }
        users.retain(|user| !named.contains_key(user));
        let mut members: Vec<PresenceMember> = named.into_values().cloned().collect();
        members.sort_by(|a, b| (a.role, &a.user_id).cmp(&(b.role, &b.user_id)));
        let beyond = members.len().saturating_sub(MAX_LISTED_MEMBERS);
        members.truncate(MAX_LISTED_MEMBERS);
        View {
            members,
            others: (users.len() as u64)
                .saturating_add(unnamed)
                .saturating_add(beyond as u64),
        }
    }

    pub(super) fn snapshot(&self, session_id: &str) -> PresenceSnapshot {
        PresenceSnapshot {
            session_id: session_id.to_string(),
            members: self.members.clone(),
            others: self.others,
        }
    }

    /// What changed from `before` to `self`, or `None` when nothing a member sees did.
    pub(super) fn change_from(&self, before: &View, session_id: &str) -> Option<PresenceChange> {
        let ids = |view: &View| -> BTreeSet<Option<String>> {
            view.members.iter().map(|m| m.user_id.clone()).collect()
        };
        let (now, then) = (ids(self), ids(before));
        let joined: Vec<PresenceMember> = self
            .members
            .iter()
            .filter(|m| !then.contains(&m.user_id))
            .cloned()
            .collect();
        let left: Vec<PresenceMember> = before
            .members
            .iter()
            .filter(|m| !now.contains(&m.user_id))
            .cloned()
            .collect();
        if joined.is_empty() && left.is_empty() && self.others == before.others {
            return None;
        }
        Some(PresenceChange {
            session_id: session_id.to_string(),
            joined,
            left,
            others: self.others,
        })
    }
}

#[cfg(test)]
mod tests {
    use switchboard_protocol::PresenceRole;

    use super::*;

    fn named(user: &str, name: Option<&str>, role: PresenceRole) -> PresenceMember {
        PresenceMember {
            user_id: Some(user.into()),
            name: name.map(str::to_string),
            role,
        }
    }

    #[test]
    fn replicas_merge_into_one_list_with_each_user_once() {
        let a = Entry {
            named: vec![named("op", None, PresenceRole::Operator)],
            users: vec!["guest".into()],
            unnamed: 1,
        };
        let b = Entry {
            named: vec![
                named("op", Some("Dana"), PresenceRole::Operator),
                named("u1", None, PresenceRole::Owner),
            ],
            users: vec!["guest".into(), "op".into()],
            unnamed: 2,
        };
        let view = View::merge([&a, &b].into_iter());
        assert_eq!(
            view.members,
            vec![
                named("u1", None, PresenceRole::Owner),
                named("op", Some("Dana"), PresenceRole::Operator),
            ]
        );
        assert_eq!(view.others, 1 + 3, "guest once, three anonymous");
    }

    #[test]
    fn the_list_is_capped_and_the_rest_counted() {
        let entry = Entry {
            named: (0..MAX_LISTED_MEMBERS + 7)
                .map(|i| named(&format!("op{i:03}"), None, PresenceRole::Operator))
                .collect(),
            users: vec![],
            unnamed: 1,
        };
        let view = View::merge(std::iter::once(&entry));
        assert_eq!(view.members.len(), MAX_LISTED_MEMBERS);
        assert_eq!(view.others, 8);
    }

    #[test]
    fn a_change_names_who_joined_and_who_left() {
        let before = View {
            members: vec![named("u1", None, PresenceRole::Owner)],
            others: 1,
        };
        let after = View {
            members: vec![named("op", Some("Dana"), PresenceRole::Operator)],
            others: 1,
        };
        let change = after.change_from(&before, "s_1").unwrap();
        assert_eq!(change.joined, after.members);
        assert_eq!(change.left, before.members);
        assert_eq!(after.change_from(&after.clone(), "s_1"), None);
        let fewer = View {
            others: 0,
            ..after.clone()
        };
        let counted = fewer.change_from(&after, "s_1").unwrap();
        assert!(counted.joined.is_empty() && counted.left.is_empty());
        assert_eq!(counted.others, 0);
    }
}
