//! `turn.cancel` from any replica. On the turn's own replica it cancels at once; on
//! another it leaves a cancel request in the shared records, which the turn's replica
//! polls for.

use std::time::Duration;

use bytes::Bytes;
use switchboard_backplane::RecordKey;

use super::Turns;
use crate::error::ClientError;
use crate::ids::is_plausible_own_id;
use crate::records::namespace::TURN_CANCELS;

/// How often a running turn looks for a cancel request made on another replica.
const REMOTE_CANCEL_POLL: Duration = Duration::from_millis(300);
/// How much longer than the turn deadline a cancel request is kept.
const CANCEL_MARGIN: Duration = Duration::from_secs(30);

impl Turns {
    /// Completes when a member on another replica asks to cancel `turn_id` (see
    /// [`Turns::cancel_anywhere`]).
    pub(super) async fn cancelled_elsewhere(&self, turn_id: &str) {
        let key = RecordKey::new(TURN_CANCELS, turn_id);
        loop {
            tokio::time::sleep(REMOTE_CANCEL_POLL).await;
            if let Ok(Some(_)) = self.backplane.record_get(&key).await {
                return;
            }
        }
    }

    /// `turn.cancel` for a turn this replica does not run: when a turn of the session
    /// holds the lease somewhere, leave a cancel request that its replica picks up.
    /// False when no turn of the session runs anywhere.
    pub async fn cancel_anywhere(
        &self,
        session_id: &str,
        turn_id: &str,
    ) -> Result<bool, ClientError> {
        if self.cancel(session_id, turn_id) {
            return Ok(true);
        }
        if !is_plausible_own_id(turn_id) {
            return Ok(false);
        }
        if self.lease_of(session_id).await?.is_none() {
            return Ok(false);
        }
        self.backplane
            .record_put(
                &RecordKey::new(TURN_CANCELS, turn_id),
                Bytes::from_static(b"1"),
                Some(self.limits.deadline + CANCEL_MARGIN),
            )
            .await?;
        Ok(true)
    }
}
