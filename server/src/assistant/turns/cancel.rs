//! `turn.cancel` from any replica. On the turn's own replica it cancels at once; on
//! another it leaves a cancel request in the shared records (the truth) and sends the
//! replica holding the session's lease a hint on its control stream, which wakes the
//! turn to read the request (see [`super::listen`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchboard_backplane::RecordKey;
use tokio::sync::Notify;

use super::Turns;
use crate::assistant::control::{self, Hint};
use crate::assistant::handoff::RunningTurns;
use crate::error::ClientError;
use crate::ids::is_plausible_own_id;
use crate::records::namespace::TURN_CANCELS;

/// How often a running turn reads its cancel record when no wake-up came. Only a
/// safety net: a cancel made on another replica wakes the turn through this replica's
/// control stream, but that hint is lost when it is sent while this replica
/// resubscribes (a backplane reconnect, a new replica id) or when sending it fails.
/// Slow, because every running turn costs a read per interval.
pub const CANCEL_SAFETY_NET: Duration = Duration::from_secs(2);
/// How much longer than the turn deadline a cancel request is kept.
const CANCEL_MARGIN: Duration = Duration::from_secs(30);

/// A running turn's registration for cancel hints; removed when dropped, however the
/// turn ends.
pub(super) struct CancelWatch<'a> {
    turns: &'a Turns,
    turn_id: String,
    pub(super) hint: Arc<Notify>,
}

impl Drop for CancelWatch<'_> {
    fn drop(&mut self) {
        self.turns.cancel_hints.remove(&self.turn_id);
    }
}

impl Turns {
    /// Register `turn_id` for cancel hints. Done before its `turn.start` is written, so
    /// no member can know the turn's id, let alone cancel it, before a hint can land.
    pub(super) fn watch_cancel(&self, turn_id: &str) -> CancelWatch<'_> {
        let hint = Arc::new(Notify::new());
        self.cancel_hints.insert(turn_id.to_string(), hint.clone());
        CancelWatch {
            turns: self,
            turn_id: turn_id.to_string(),
            hint,
        }
    }

    /// Completes when a member on another replica asked to cancel `turn_id` (see
    /// [`Turns::cancel_anywhere`]): the record is read on each hint, and every
    /// `cancel_safety_net` in case a hint was lost.
    pub(super) async fn cancelled_elsewhere(&self, turn_id: &str, hint: &Notify) {
        let key = RecordKey::new(TURN_CANCELS, turn_id);
        loop {
            tokio::select! {
                () = hint.notified() => {}
                () = tokio::time::sleep(self.limits.load().cancel_safety_net) => {}
            }
            if let Ok(Some(_)) = self.backplane.record_get(&key).await {
                return;
            }
        }
    }

    /// A hint says `turn_id` may be cancelled: its turn, if it runs here, reads the
    /// cancel record.
    pub(super) fn wake_cancel(&self, turn_id: &str) {
        if let Some(hint) = self.cancel_hints.get(turn_id) {
            hint.notify_one();
        }
    }

    /// Hints may have been lost: every running turn reads its cancel record.
    pub(super) fn wake_all_cancels(&self) {
        for hint in self.cancel_hints.iter() {
            hint.notify_one();
        }
    }

    /// `turn.cancel` of `turn_id` in `session_id`: cancelled here when it runs here;
    /// when it runs elsewhere (the session's lease names it), leave a cancel request
    /// and wake the lease's replica. False when no turn of that id runs in that
    /// session anywhere: a turn id of another session cancels nothing.
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
        let Some(lease) = self.lease_of(session_id).await? else {
            return Ok(false);
        };
        if lease.running.as_ref().is_none_or(|r| r.turn_id != turn_id) {
            // No turn of that id runs in this session (it finished, or it is a turn of
            // another session): nothing to cancel, and no record that could reach a
            // turn elsewhere.
            return Ok(false);
        }
        self.backplane
            .record_put(
                &RecordKey::new(TURN_CANCELS, turn_id),
                Bytes::from_static(b"1"),
                Some(self.limits.load().deadline + CANCEL_MARGIN),
            )
            .await?;
        let hint = Hint::Cancel {
            turn_id: turn_id.to_string(),
        };
        control::send(self.backplane.as_ref(), &lease.replica, hint).await;
        Ok(true)
    }
}

#[async_trait::async_trait]
impl RunningTurns for Turns {
    /// Cancel whatever turn of `session_id` runs now, on any replica.
    async fn cancel_running(&self, session_id: &str) -> Result<(), ClientError> {
        let here = self.lock().get(session_id).and_then(|w| {
            w.running.as_ref().map(|running| {
                running.cancel.cancel();
                running.turn_id.clone()
            })
        });
        if here.is_some() {
            return Ok(());
        }
        if let Some(running) = self.lease_of(session_id).await?.and_then(|l| l.running) {
            self.cancel_anywhere(session_id, &running.turn_id).await?;
        }
        Ok(())
    }
}
