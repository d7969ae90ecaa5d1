//! This replica's side of one session's presence: its member connections, the other
//! replicas' entries as last read, and what the members were last shown.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use switchboard_protocol::presence::TypingNotice;
use switchboard_protocol::{PresenceMember, PresenceRole, ServerFrame, ServerReply};
use tokio::time::Instant;

use super::liveness::Liveness;
use super::record::{Entry, Record};
use super::typing::TypingGate;
use super::view::View;
use crate::fanout::{ConnectionId, Outbound};

/// One member connection of this replica.
pub(super) struct LocalMember {
    pub(super) outbound: Arc<Outbound>,
    /// Who it is; `user_id` is kept for `other` members too (to count each user once),
    /// and left out of what others see ([`public`]).
    pub(super) who: PresenceMember,
    pub(super) typing: TypingGate,
}

/// How a member appears to others: owners and operators as they are, anyone else
/// without a user id or a name.
pub(super) fn public(who: &PresenceMember) -> PresenceMember {
    if who.role == PresenceRole::Other {
        PresenceMember {
            user_id: None,
            name: None,
            role: PresenceRole::Other,
        }
    } else {
        who.clone()
    }
}

/// A server frame as socket text.
pub(super) fn frame_text(frame: ServerFrame) -> Utf8Bytes {
    Utf8Bytes::from(ServerReply::new(None, frame).to_json())
}

pub(super) struct LocalSession {
    pub(super) members: HashMap<ConnectionId, LocalMember>,
    /// The other replicas' entries, as last read (or written).
    pub(super) remote: BTreeMap<String, Entry>,
    /// What the members were last shown.
    pub(super) shown: View,
    /// This replica's entry as last written (`None`: not in the record).
    pub(super) written: Option<Entry>,
    /// When the record was last written by this replica, and last read.
    pub(super) written_at: Instant,
    pub(super) read_at: Instant,
    /// A write of this replica's entry is running; `dirty`: another is due after it.
    pub(super) writing: bool,
    pub(super) dirty: bool,
    /// A re-read of the record is running; `read_again`: another is due after it.
    pub(super) reading: bool,
    pub(super) read_again: bool,
    /// The last read failed: read again at the next beat.
    pub(super) stale: bool,
}

impl LocalSession {
    pub(super) fn new(now: Instant) -> LocalSession {
        LocalSession {
            members: HashMap::new(),
            remote: BTreeMap::new(),
            shown: View::default(),
            written: None,
            written_at: now,
            read_at: now,
            writing: false,
            dirty: false,
            reading: false,
            read_again: false,
            stale: false,
        }
    }

    /// This replica's entry, from its member connections now.
    pub(super) fn own_entry(&self) -> Entry {
        Entry::of(self.members.values().map(|m| &m.who))
    }

    /// Take the other replicas' entries from `record` (read at `now`).
    pub(super) fn take_remote(
        &mut self,
        record: Record,
        own: &str,
        liveness: &mut Liveness,
        now: Instant,
    ) {
        let mut remote = record.replicas;
        remote.remove(own);
        for replica in remote.keys() {
            liveness.saw(replica, now);
        }
        self.remote = remote;
        self.read_at = now;
        self.stale = false;
    }

    /// The replicas whose entries count now, except this one.
    pub(super) fn live_remotes(&self, liveness: &Liveness) -> Vec<String> {
        self.remote
            .keys()
            .filter(|r| !liveness.is_dead(r))
            .cloned()
            .collect()
    }

    /// The view from this replica's members and the live replicas' entries.
    pub(super) fn view(&self, liveness: &Liveness) -> View {
        let own = self.own_entry();
        let remote = self
            .remote
            .iter()
            .filter(|(replica, _)| !liveness.is_dead(replica))
            .map(|(_, entry)| entry);
        View::merge(std::iter::once(&own).chain(remote))
    }

    /// Show the members the current view: a `presence.changed` to each (but `skip`)
    /// when it differs from what they were shown.
    pub(super) fn refresh(
        &mut self,
        session_id: &str,
        liveness: &Liveness,
        skip: Option<ConnectionId>,
    ) {
        let view = self.view(liveness);
        if let Some(change) = view.change_from(&self.shown, session_id) {
            self.deliver(&frame_text(ServerFrame::PresenceChanged(change)), skip);
        }
        self.shown = view;
    }

    /// Send a `typing` frame about `who` to the members (but `skip`).
    pub(super) fn typing(
        &self,
        session_id: &str,
        who: PresenceMember,
        typing: bool,
        skip: Option<ConnectionId>,
    ) {
        let notice = TypingNotice {
            session_id: session_id.to_string(),
            member: who,
            typing,
        };
        self.deliver(&frame_text(ServerFrame::Typing(notice)), skip);
    }

    /// Queue `frame` to every member (but `skip`); never waits (a full queue is the
    /// outbound's slow consumer).
    pub(super) fn deliver(&self, frame: &Utf8Bytes, skip: Option<ConnectionId>) {
        for (connection, member) in &self.members {
            if Some(*connection) != skip {
                let _ = member.outbound.enqueue(frame.clone());
            }
        }
    }
}
