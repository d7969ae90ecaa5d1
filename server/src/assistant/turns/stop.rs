//! Ending a conversation's turns for good, before the conversation is deleted or its
//! owner erased: the running turn is cancelled wherever it runs, then each queued one
//! as it starts, until the session's queue (its lease) is gone. A turn still running
//! after its conversation was removed would write it back into the backplane.

use std::time::Duration;

use async_trait::async_trait;

use super::Turns;
use crate::conversations::TurnStopper;
use crate::error::ClientError;

/// How often the queue is looked at while its turns end.
const STOP_POLL: Duration = Duration::from_millis(50);

#[async_trait]
impl TurnStopper for Turns {
    async fn stop_turns(&self, session_id: &str, patience: Duration) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let Some(lease) = self.lease_of(session_id).await? else {
                return Ok(());
            };
            if let Some(running) = &lease.running {
                self.cancel_anywhere(session_id, &running.turn_id).await?;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::new(
                    switchboard_protocol::ErrorCode::Unavailable,
                    "a turn of this conversation is still ending; retry in a moment",
                ));
            }
            tokio::time::sleep(STOP_POLL).await;
        }
    }
}
