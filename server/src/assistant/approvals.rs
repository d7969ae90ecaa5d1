//! Tool calls waiting for a member's decision (`tool.request` → `tool.decide`).
//!
//! The turn waits on the replica that runs it, but the decision may arrive on any
//! replica, so both sides meet in the shared records: the turn opens the call
//! (`tool-calls`, naming the replica that waits), a decision is created once
//! (`tool-decisions`, first one wins), and the waiting turn is woken at once: directly
//! on its own replica, by a hint on that replica's control stream from another
//! ([`super::control`]). The decision record is the truth; a woken turn reads it. A
//! call nobody decides before the timeout is denied, and that denial is written the
//! same way, so a late `tool.decide` gets `conflict`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use switchboard_backplane::{Backplane, RecordError, RecordKey};
use switchboard_protocol::ErrorCode;
use tokio::sync::Notify;

use crate::access::AccessContext;
use crate::access::policy;
use crate::assistant::control::{self, Hint};
use crate::error::ClientError;
use crate::ids::is_plausible_own_id;
use crate::records::namespace::{TOOL_CALLS, TOOL_DECISIONS};

/// How often a waiting turn reads its decision record when no wake-up came. Only a
/// safety net: a decision made elsewhere wakes the turn through its replica's control
/// stream, but that hint is lost when it is sent while the replica resubscribes (a
/// backplane reconnect, a new replica id) or when sending it fails. Slow, because
/// every waiting call costs a read per interval.
pub const DECISION_SAFETY_NET: Duration = Duration::from_secs(2);
/// How long call and decision records outlive the approval timeout.
const RECORD_MARGIN: Duration = Duration::from_secs(600);

/// Decisions as older gateways recorded them (anything else not JSON is a denial).
const APPROVED: &[u8] = b"approved";
const TIMED_OUT: &[u8] = b"timeout";

/// A member's decision as recorded: what, and who (`user_id`, or `anonymous`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DecisionRecord {
    approved: bool,
    by: String,
}

/// How an anonymous member who decided is named in `tool.result.decided_by`.
const ANONYMOUS: &str = "anonymous";

/// A call waiting for a decision, as every replica sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingCall {
    pub session_id: String,
    pub turn_id: String,
    pub org_id: String,
    pub tool: String,
    /// The session's owner (`None` for anonymous sessions): who decides calls opened
    /// by gateways that did not record the asker.
    pub owner: Option<String>,
    /// The principal whose message started the turn: the call runs as them, and they
    /// (or staff whose access covers theirs) decide it.
    #[serde(default)]
    pub asker: Option<AccessContext>,
    /// The replica whose turn waits, to be woken when the decision is made elsewhere
    /// (absent in calls opened by older gateways: their turns poll).
    #[serde(default)]
    pub replica: Option<String>,
}

/// How a call was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approved,
    Denied,
    /// Nobody decided in time: treated as denied.
    TimedOut,
}

impl Decision {
    /// The decision in a record, and who made it (`None`: timed out, or a record
    /// written by a gateway that did not name the member).
    fn from_record(value: &[u8]) -> (Decision, Option<String>) {
        if let Ok(record) = serde_json::from_slice::<DecisionRecord>(value) {
            let decision = if record.approved {
                Decision::Approved
            } else {
                Decision::Denied
            };
            return (decision, Some(record.by));
        }
        let decision = match value {
            APPROVED => Decision::Approved,
            TIMED_OUT => Decision::TimedOut,
            _ => Decision::Denied,
        };
        (decision, None)
    }
}

pub struct Approvals {
    backplane: Arc<dyn Backplane>,
    /// Turns on this replica waiting for a decision, by call id.
    waiters: DashMap<String, Arc<Notify>>,
    timeout: Duration,
    /// How often a waiting turn reads its decision without a wake-up
    /// ([`DECISION_SAFETY_NET`] outside tests).
    safety_net: Duration,
}

impl Approvals {
    pub fn new(
        backplane: Arc<dyn Backplane>,
        timeout: Duration,
        safety_net: Duration,
    ) -> Approvals {
        Approvals {
            backplane,
            waiters: DashMap::new(),
            timeout,
            safety_net,
        }
    }

    /// Record that `call_id` waits for a decision. Before `tool.request` goes out, so
    /// a decision can never arrive for a call nobody can find.
    pub async fn open(&self, call_id: &str, call: &PendingCall) -> Result<(), RecordError> {
        let value = serde_json::to_vec(call).unwrap_or_default();
        self.backplane
            .record_put(
                &RecordKey::new(TOOL_CALLS, call_id),
                Bytes::from(value),
                Some(self.timeout + RECORD_MARGIN),
            )
            .await
    }

    /// A member's decision. Refused with `not_found` when no such call waits in that
    /// session for this principal's org (the same answer whether or not it exists
    /// elsewhere), `forbidden` when the member may not decide, `conflict` when it was
    /// already decided (or timed out).
    pub async fn decide(
        &self,
        access: &AccessContext,
        session_id: &str,
        call_id: &str,
        approved: bool,
    ) -> Result<(), ClientError> {
        let not_found = || {
            ClientError::new(
                ErrorCode::NotFound,
                format!("no tool call {call_id} is waiting for a decision in session {session_id}"),
            )
        };
        if !is_plausible_own_id(call_id) {
            return Err(not_found());
        }
        let Some(raw) = self
            .backplane
            .record_get(&RecordKey::new(TOOL_CALLS, call_id))
            .await?
        else {
            return Err(not_found());
        };
        let Ok(call) = serde_json::from_slice::<PendingCall>(&raw) else {
            return Err(not_found());
        };
        if call.session_id != session_id {
            return Err(not_found());
        }
        let asker = call.asker.clone().unwrap_or_else(|| AccessContext {
            user_id: call.owner.clone(),
            org_id: call.org_id.clone(),
            groups: Vec::new(),
            roles: Vec::new(),
            anonymous: call.owner.is_none(),
            name: None,
        });
        policy::decide_tool(access, &call.org_id, &asker)
            .map_err(|refused| refused.into_error(not_found))?;
        let record = DecisionRecord {
            approved,
            by: match (&access.user_id, access.anonymous) {
                (Some(user), false) => user.clone(),
                _ => ANONYMOUS.to_string(),
            },
        };
        let created = self
            .backplane
            .record_create(
                &RecordKey::new(TOOL_DECISIONS, call_id),
                Bytes::from(serde_json::to_vec(&record).unwrap_or_default()),
                Some(self.timeout + RECORD_MARGIN),
            )
            .await?;
        if !created {
            return Err(ClientError::new(
                ErrorCode::Conflict,
                format!("tool call {call_id} was already decided (or its time to decide ran out)"),
            ));
        }
        let local = self.waiters.get(call_id).map(|waiter| waiter.clone());
        match (local, call.replica) {
            (Some(waiter), _) => waiter.notify_one(),
            (None, Some(replica)) => {
                let hint = Hint::Decided {
                    call_id: call_id.to_string(),
                };
                control::send(self.backplane.as_ref(), &replica, hint).await;
            }
            (None, None) => {}
        }
        Ok(())
    }

    /// A hint says `call_id` may be decided: its waiting turn, if on this replica,
    /// reads the decision record again.
    pub fn wake(&self, call_id: &str) {
        if let Some(waiter) = self.waiters.get(call_id) {
            waiter.notify_one();
        }
    }

    /// Whether a turn on this replica waits for `call_id`.
    #[cfg(test)]
    pub(crate) fn is_waiting(&self, call_id: &str) -> bool {
        self.waiters.contains_key(call_id)
    }

    /// Hints may have been lost (the control stream was resubscribed): every waiting
    /// turn reads its decision record again.
    pub fn wake_all(&self) {
        for waiter in self.waiters.iter() {
            waiter.notify_one();
        }
    }

    /// Wait for the decision on `call_id`, and who made it; after the approval
    /// timeout, deny it. A backplane outage while waiting keeps waiting until the
    /// timeout.
    pub async fn wait(&self, call_id: &str) -> (Decision, Option<String>) {
        let notify = Arc::new(Notify::new());
        self.waiters.insert(call_id.to_string(), notify.clone());
        let _unregister = Unregister {
            waiters: &self.waiters,
            call_id,
        };
        let key = RecordKey::new(TOOL_DECISIONS, call_id);
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match self.backplane.record_get(&key).await {
                Ok(Some(value)) => return Decision::from_record(&value),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(call_id, error = %e, "could not read a tool decision; retrying")
                }
            }
            if tokio::time::Instant::now() >= deadline {
                // Deny by writing the timeout, unless a decision just beat us to it.
                match self
                    .backplane
                    .record_create(&key, Bytes::from_static(TIMED_OUT), Some(RECORD_MARGIN))
                    .await
                {
                    Ok(false) => continue,
                    Ok(true) | Err(_) => return (Decision::TimedOut, None),
                }
            }
            tokio::select! {
                () = notify.notified() => {}
                () = tokio::time::sleep(self.safety_net) => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// Removes a waiter however its wait ends (decided, timed out, or the turn dropped).
struct Unregister<'a> {
    waiters: &'a DashMap<String, Arc<Notify>>,
    call_id: &'a str,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.waiters.remove(self.call_id);
    }
}

#[cfg(test)]
mod tests {
    use switchboard_backplane::{MemoryBackplane, Retention};

    use super::*;

    fn member(user: &str, org: &str, roles: &[&str]) -> AccessContext {
        AccessContext {
            user_id: Some(user.into()),
            org_id: org.into(),
            groups: vec![],
            roles: roles.iter().map(|r| r.to_string()).collect(),
            anonymous: false,
            name: None,
        }
    }

    /// Two replicas' approvals. Without a turn listening for hints (see
    /// `turns::tests` for that), a decision on the other replica is noticed by the
    /// safety-net poll, made short here.
    fn setup(timeout: Duration) -> (Arc<Approvals>, Arc<Approvals>) {
        let backplane: Arc<dyn Backplane> = Arc::new(MemoryBackplane::new(Retention::default()));
        let poll = Duration::from_millis(50);
        (
            Arc::new(Approvals::new(backplane.clone(), timeout, poll)),
            Arc::new(Approvals::new(backplane, timeout, poll)),
        )
    }

    /// A call in acme's session `s_1`, owned by `owner`, asked by the owner.
    fn call(owner: Option<&str>) -> PendingCall {
        PendingCall {
            session_id: "s_1".into(),
            turn_id: "t_1".into(),
            org_id: "acme".into(),
            tool: "refund".into(),
            owner: owner.map(str::to_string),
            asker: Some(match owner {
                Some(owner) => member(owner, "acme", &[]),
                None => AccessContext {
                    user_id: None,
                    anonymous: true,
                    ..member("-", "acme", &[])
                },
            }),
            replica: None,
        }
    }

    #[tokio::test]
    async fn a_decision_on_another_replica_reaches_the_waiting_turn_without_a_hint() {
        let (a, b) = setup(Duration::from_secs(10));
        a.open("tc_1", &call(Some("ann"))).await.unwrap();
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.wait("tc_1").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        b.decide(&member("ann", "acme", &[]), "s_1", "tc_1", true)
            .await
            .unwrap();
        assert_eq!(
            waiting.await.unwrap(),
            (Decision::Approved, Some("ann".to_string()))
        );
        let again = b
            .decide(&member("ann", "acme", &[]), "s_1", "tc_1", false)
            .await;
        assert_eq!(again.unwrap_err().code, ErrorCode::Conflict);
    }

    #[tokio::test]
    async fn nobody_deciding_in_time_denies_and_a_late_decision_conflicts() {
        let (a, _) = setup(Duration::from_millis(100));
        a.open("tc_2", &call(Some("ann"))).await.unwrap();
        assert_eq!(a.wait("tc_2").await, (Decision::TimedOut, None));
        let late = a
            .decide(&member("ann", "acme", &[]), "s_1", "tc_2", true)
            .await;
        assert_eq!(late.unwrap_err().code, ErrorCode::Conflict);
    }

    #[tokio::test]
    async fn only_the_owner_or_an_operator_of_the_org_may_decide() {
        let (a, _) = setup(Duration::from_secs(10));
        a.open("tc_3", &call(Some("ann"))).await.unwrap();
        let other_org = a
            .decide(&member("ann", "globex", &["operator"]), "s_1", "tc_3", true)
            .await;
        assert_eq!(other_org.unwrap_err().code, ErrorCode::NotFound);
        let wrong_session = a
            .decide(&member("ann", "acme", &[]), "s_2", "tc_3", true)
            .await;
        assert_eq!(wrong_session.unwrap_err().code, ErrorCode::NotFound);
        let colleague = a
            .decide(&member("bob", "acme", &[]), "s_1", "tc_3", true)
            .await;
        assert_eq!(colleague.unwrap_err().code, ErrorCode::Forbidden);
        a.decide(&member("olga", "acme", &["operator"]), "s_1", "tc_3", false)
            .await
            .unwrap();
        assert_eq!(
            a.wait("tc_3").await,
            (Decision::Denied, Some("olga".to_string()))
        );
    }

    /// The session's owner cannot approve a call another member's message started
    /// (it would run as that member); the asker can.
    #[tokio::test]
    async fn the_owner_cannot_decide_a_call_someone_else_asked() {
        let (a, _) = setup(Duration::from_secs(10));
        let mut asked_by_operator = call(Some("ann"));
        asked_by_operator.asker = Some(AccessContext {
            groups: vec!["hr".into()],
            ..member("olga", "acme", &["operator"])
        });
        a.open("tc_4", &asked_by_operator).await.unwrap();
        let owner = a
            .decide(&member("ann", "acme", &[]), "s_1", "tc_4", true)
            .await;
        assert_eq!(owner.unwrap_err().code, ErrorCode::Forbidden);
        let uncovered = a
            .decide(&member("otto", "acme", &["operator"]), "s_1", "tc_4", true)
            .await;
        assert_eq!(uncovered.unwrap_err().code, ErrorCode::Forbidden);
        a.decide(&member("olga", "acme", &["operator"]), "s_1", "tc_4", true)
            .await
            .unwrap();
        assert_eq!(
            a.wait("tc_4").await,
            (Decision::Approved, Some("olga".to_string()))
        );
    }
}
