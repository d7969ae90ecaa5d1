//! Wake-up hints between replicas. Each replica listens on its own control stream,
//! `control:<replica_id>` (the turn listens, see `turns::listen`); a replica that
//! records a change another replica must act on (a `turn.cancel` for a turn running
//! there, a decision on a tool call waiting there) sends that replica a hint.
//!
//! A hint says only where to look: the records (`turn-cancels`, `tool-decisions`) stay
//! the truth, and the receiver re-reads the record before it acts. Hints are not
//! durable: one sent while the receiver resubscribes, or that could not be sent, is
//! lost; the receiver's slow poll of the same record makes up for it.

use switchboard_backplane::{Backplane, StreamName};
use switchboard_protocol::EventBody;

/// The event name of a cancel hint; its data is `{"turn_id": …}`.
const CANCEL: &str = "turn.cancel";
/// The event name of a decision hint; its data is `{"call_id": …}`.
const DECIDED: &str = "tool.decided";

/// What a replica is asked to look at again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// `turn-cancels/<turn_id>` may now hold a cancel request.
    Cancel { turn_id: String },
    /// `tool-decisions/<call_id>` may now hold a decision.
    Decided { call_id: String },
}

impl Hint {
    fn body(&self) -> EventBody {
        let (name, data) = match self {
            Hint::Cancel { turn_id } => (CANCEL, serde_json::json!({ "turn_id": turn_id })),
            Hint::Decided { call_id } => (DECIDED, serde_json::json!({ "call_id": call_id })),
        };
        EventBody::Custom {
            name: name.to_string(),
            data,
            publisher: None,
            durable: false,
        }
    }

    /// The hint an event of a control stream carries; `None` for anything else.
    pub fn parse(body: &EventBody) -> Option<Hint> {
        let EventBody::Custom { name, data, .. } = body else {
            return None;
        };
        let field = |key: &str| data.get(key)?.as_str().map(str::to_string);
        match name.as_str() {
            CANCEL => Some(Hint::Cancel {
                turn_id: field("turn_id")?,
            }),
            DECIDED => Some(Hint::Decided {
                call_id: field("call_id")?,
            }),
            _ => None,
        }
    }
}

/// Send `hint` to replica `replica_id`. Never fails the caller: the record is already
/// written, and a hint that does not arrive only makes the receiver notice later.
pub async fn send(backplane: &dyn Backplane, replica_id: &str, hint: Hint) {
    let Ok(stream) = StreamName::control(replica_id) else {
        tracing::warn!(replica_id, "not a replica id; no hint sent");
        return;
    };
    if let Err(e) = backplane.append(&stream, hint.body()).await {
        tracing::warn!(%stream, ?hint, error = %e, "could not send a hint; the receiver's poll will notice");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_round_trip_and_other_events_are_none() {
        for hint in [
            Hint::Cancel {
                turn_id: "t_1".into(),
            },
            Hint::Decided {
                call_id: "tc_1".into(),
            },
        ] {
            assert_eq!(Hint::parse(&hint.body()), Some(hint));
        }
        let other = EventBody::Custom {
            name: "order.shipped".into(),
            data: serde_json::json!({ "turn_id": "t_1" }),
            publisher: None,
            durable: false,
        };
        assert_eq!(Hint::parse(&other), None);
        let malformed = EventBody::Custom {
            name: CANCEL.into(),
            data: serde_json::json!({ "turn_id": 7 }),
            publisher: None,
            durable: false,
        };
        assert_eq!(Hint::parse(&malformed), None);
    }
}
