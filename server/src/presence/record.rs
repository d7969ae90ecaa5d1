//! A session's presence record, `presence/<session_id>`: each replica's members of the
//! session, under the replica's presence id. A replica changes only its own entry
//! (and drops the entries of replicas it knows are dead), always by compare-and-set,
//! so concurrent writers never lose each other's entries.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use switchboard_backplane::{Backplane, ErrorKind, RecordError, RecordKey};
use switchboard_protocol::{PresenceMember, PresenceRole};

use crate::metrics::Metrics;
use crate::records::namespace::PRESENCE;

/// A record lives this long after its last write; every replica rewrites its entries
/// well before ([`REWRITE_EVERY`]), so only a record all of whose replicas died lapses.
pub(super) const RECORD_TTL: Duration = Duration::from_secs(3600);
/// How often a replica rewrites its entry of a session it still has members in.
pub(super) const REWRITE_EVERY: Duration = Duration::from_secs(1200);
/// User ids one replica's entry lists at most (named and others together); the rest
/// are counted in `unnamed`.
pub(super) const MAX_ENTRY_IDS: usize = 200;
/// Compare-and-set attempts before a write gives up for now (and is retried).
const MAX_ATTEMPTS: usize = 32;

/// One replica's members of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Entry {
    /// Owners and operators, by user id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) named: Vec<PresenceMember>,
    /// Signed-in members who are neither (counted once each across replicas).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) users: Vec<String>,
    /// Members without a user id (anonymous connections), plus ids over the cap.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) unnamed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Entry {
    /// The entry of a replica whose members are `members` (one per connection).
    pub(super) fn of<'a>(members: impl Iterator<Item = &'a PresenceMember>) -> Entry {
        let mut named: BTreeMap<&str, &PresenceMember> = BTreeMap::new();
        let mut users: BTreeSet<&str> = BTreeSet::new();
        let mut unnamed: u64 = 0;
        for member in members {
            match member.user_id.as_deref() {
                None => unnamed = unnamed.saturating_add(1),
                Some(user) if member.role == PresenceRole::Other => {
                    users.insert(user);
                }
                Some(user) => {
                    let best = named.entry(user).or_insert(member);
                    // One user, several connections: the highest role counts.
                    if member.role < best.role {
                        *best = member;
                    }
                }
            }
        }
        users.retain(|user| !named.contains_key(user));
        let mut entry = Entry::default();
        for member in named.into_values() {
            if entry.named.len() < MAX_ENTRY_IDS {
                entry.named.push(member.clone());
            } else {
                unnamed = unnamed.saturating_add(1);
            }
        }
        for user in users {
            if entry.named.len() + entry.users.len() < MAX_ENTRY_IDS {
                entry.users.push(user.to_string());
            } else {
                unnamed = unnamed.saturating_add(1);
            }
        }
        entry.unnamed = unnamed;
        entry
    }

    pub(super) fn is_empty(&self) -> bool {
        self.named.is_empty() && self.users.is_empty() && self.unnamed == 0
    }
}

/// The record: every replica's entry, by presence id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Record {
    #[serde(default)]
    pub(super) replicas: BTreeMap<String, Entry>,
}

impl Record {
    fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// A value that does not parse (written by a newer gateway, damaged) counts as
    /// empty: it is replaced at the next write.
    fn decode(raw: &[u8]) -> Record {
        serde_json::from_slice(raw).unwrap_or_default()
    }
}

fn key(session_id: &str) -> RecordKey {
    RecordKey::new(PRESENCE, session_id)
}

/// The record of `session_id` now (empty when there is none).
pub(super) async fn read(
    backplane: &dyn Backplane,
    metrics: &Metrics,
    session_id: &str,
) -> Result<Record, RecordError> {
    let started = Instant::now();
    let raw = backplane.record_get(&key(session_id)).await;
    metrics.observe_backplane("presence_read", started, &raw);
    Ok(raw?.map(|raw| Record::decode(&raw)).unwrap_or_default())
}

/// Change the record of `session_id` with `change`, by compare-and-set; an empty
/// record is removed. Returns the record as written.
pub(super) async fn update(
    backplane: &dyn Backplane,
    metrics: &Metrics,
    session_id: &str,
    change: impl Fn(&mut Record),
) -> Result<Record, RecordError> {
    let key = key(session_id);
    for _ in 0..MAX_ATTEMPTS {
        let started = Instant::now();
        let raw = backplane.record_get(&key).await;
        metrics.observe_backplane("presence_read", started, &raw);
        let raw = raw?;
        let mut record = raw.as_deref().map(Record::decode).unwrap_or_default();
        change(&mut record);
        let new = (!record.replicas.is_empty()).then(|| record.encode());
        let started = Instant::now();
        let written = match (raw, new) {
            (None, None) => Ok(true),
            (None, Some(new)) => backplane.record_create(&key, new, Some(RECORD_TTL)).await,
            (Some(old), new) => {
                backplane
                    .record_replace(&key, &old, new, Some(RECORD_TTL))
                    .await
            }
        };
        metrics.observe_backplane("presence_write", started, &written);
        if written? {
            return Ok(record);
        }
    }
    Err(RecordError::new(
        ErrorKind::Unavailable,
        format!("presence/{session_id} kept changing under {MAX_ATTEMPTS} writes"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(user: Option<&str>, role: PresenceRole) -> PresenceMember {
        PresenceMember {
            user_id: user.map(str::to_string),
            name: None,
            role,
        }
    }

    #[test]
    fn an_entry_counts_each_user_once_with_their_highest_role() {
        let members = [
            member(Some("u1"), PresenceRole::Operator),
            member(Some("u1"), PresenceRole::Owner),
            member(Some("u1"), PresenceRole::Owner),
            member(Some("op"), PresenceRole::Operator),
            member(Some("guest"), PresenceRole::Other),
            member(Some("guest"), PresenceRole::Other),
            member(Some("op"), PresenceRole::Other),
            member(None, PresenceRole::Other),
            member(None, PresenceRole::Other),
        ];
        let entry = Entry::of(members.iter());
        assert_eq!(
            entry.named,
            vec![
                member(Some("op"), PresenceRole::Operator),
                member(Some("u1"), PresenceRole::Owner),
            ]
        );
        assert_eq!(entry.users, vec!["guest".to_string()]);
        assert_eq!(entry.unnamed, 2, "anonymous connections count one each");
    }

    #[test]
    fn an_entry_lists_at_most_its_cap_and_counts_the_rest() {
        let members: Vec<_> = (0..MAX_ENTRY_IDS + 30)
            .map(|i| member(Some(&format!("u{i:04}")), PresenceRole::Other))
            .collect();
        let entry = Entry::of(members.iter());
        assert_eq!(entry.users.len(), MAX_ENTRY_IDS);
        assert_eq!(entry.unnamed, 30);
        assert!(Entry::of([].iter()).is_empty());
    }

    #[test]
    fn a_record_that_does_not_parse_counts_as_empty() {
        assert_eq!(Record::decode(b"not json"), Record::default());
        let mut record = Record::default();
        record.replicas.insert(
            "p_1".into(),
            Entry {
                unnamed: 2,
                ..Entry::default()
            },
        );
        assert_eq!(Record::decode(&record.encode()), record);
    }
}
