//! A stream's history: `append` (one `EVALSHA` of the append script), `read` (one of
//! the read script) and the head `subscribe` reads as its floor.

use std::sync::Arc;
use std::time::Duration;

use switchboard_backplane::{
    AppendError, ErrorKind, Event, EventBody, ReadError, Replay, Seq, StoredBody, StreamName,
    SubscribeError,
};

use crate::command::{LONGEST, millis, number};
use crate::{RedisBackplane, StreamKeys, scripts};

/// Extra life of a stream's log key beyond `max_age`: by then every entry in it has
/// expired anyway, so the key can go without losing anything `read` would return.
const LOG_TTL_MARGIN: Duration = Duration::from_secs(60);

impl RedisBackplane {
    /// TTL of a stream's log key, in ms.
    fn log_ttl_ms(&self) -> u64 {
        millis(self.retention.max_age.min(LONGEST) + LOG_TTL_MARGIN)
    }

    /// TTL of a stream's meta key, in ms: never shorter than the log's.
    pub(crate) fn meta_ttl_ms(&self) -> u64 {
        millis(self.options.stream_idle_ttl).max(self.log_ttl_ms())
    }

    /// One round trip: `EVALSHA` of the append script, which assigns `seq` and `ts`,
    /// stores, trims and publishes.
    pub(crate) async fn append_event(
        &self,
        stream: &StreamName,
        body: EventBody,
        traceparent: Option<String>,
    ) -> Result<Arc<Event>, AppendError> {
        let keys = self.stream_keys(stream);
        let json = match &traceparent {
            None => serde_json::to_string(&body),
            Some(traceparent) => serde_json::to_string(&StoredBody {
                traceparent: Some(traceparent),
                body: &body,
            }),
        }
        .map_err(|error| {
            AppendError::new(
                ErrorKind::InvalidData,
                format!("event body is not JSON: {error}"),
            )
        })?;
        let mut con = self.commands.clone();
        let mut invocation = scripts::APPEND.prepare_invoke();
        invocation
            .key(&keys.meta)
            .key(&keys.log)
            .arg(&keys.live)
            .arg(json)
            .arg(self.retention.max_events.min(1 << 53) as u64)
            .arg(millis(self.retention.max_age))
            .arg(self.log_ttl_ms())
            .arg(self.meta_ttl_ms());
        let (seq, ts): (Vec<u8>, Vec<u8>) = self
            .run("append", invocation.invoke_async(&mut con))
            .await
            .map_err(|(kind, detail)| AppendError::new(kind, detail))?;
        let seq = number(&seq, "seq").map_err(|(kind, detail)| AppendError::new(kind, detail))?;
        let ts = number(&ts, "ts").map_err(|(kind, detail)| AppendError::new(kind, detail))?;
        Ok(Arc::new(Event {
            seq,
            ts,
            traceparent,
            body,
        }))
    }

    /// One round trip: `EVALSHA` of the read script.
    pub(crate) async fn read_history(
        &self,
        stream: &StreamName,
        after: Option<Seq>,
        limit: usize,
    ) -> Result<Replay, ReadError> {
        let keys = self.stream_keys(stream);
        let after = after.unwrap_or(0);
        let mut con = self.commands.clone();
        let mut invocation = scripts::READ.prepare_invoke();
        invocation
            .key(&keys.meta)
            .key(&keys.log)
            .arg(after)
            .arg(limit.min(u32::MAX as usize) as u64)
            .arg(millis(self.retention.max_age));
        let out: Vec<Vec<u8>> = self
            .run("read", invocation.invoke_async(&mut con))
            .await
            .map_err(|(kind, detail)| ReadError::new(kind, detail))?;
        let [last_seq, trimmed_through, entries @ ..] = out.as_slice() else {
            return Err(ReadError::new(
                ErrorKind::InvalidData,
                format!(
                    "the read script returned {} values, not 2 or more",
                    out.len()
                ),
            ));
        };
        let last_seq =
            number(last_seq, "last_seq").map_err(|(kind, detail)| ReadError::new(kind, detail))?;
        let trimmed_through = number(trimmed_through, "trimmed")
            .map_err(|(kind, detail)| ReadError::new(kind, detail))?;
        let mut events = Vec::with_capacity(entries.len());
        for entry in entries {
            match serde_json::from_slice::<Event>(entry) {
                Ok(event) => events.push(Arc::new(event)),
                // Only a publisher that bypassed the body check could store this; one
                // bad entry must not make a whole session's history unreadable.
                Err(error) => tracing::warn!(
                    stream = %stream,
                    %error,
                    "skipping a history entry that is not a Switchboard event"
                ),
            }
        }
        Ok(Replay {
            events,
            last_seq,
            trimmed: trimmed_through > after,
        })
    }

    /// The stream's newest seq (0: none), as `subscribe` needs it.
    pub(crate) async fn head(&self, keys: &StreamKeys) -> Result<Seq, SubscribeError> {
        let mut con = self.commands.clone();
        let seq: Option<String> = self
            .run("HGET seq", async {
                redis::cmd("HGET")
                    .arg(&keys.meta)
                    .arg("seq")
                    .query_async(&mut con)
                    .await
            })
            .await
            .map_err(|(kind, detail)| SubscribeError::new(kind, detail))?;
        match seq {
            None => Ok(0),
            Some(text) => text.parse().map_err(|_| {
                SubscribeError::new(
                    ErrorKind::InvalidData,
                    format!("{}: seq is {text:?}, not a number", keys.meta),
                )
            }),
        }
    }
}
